using TorchSharp.Modules;
using static TorchSharp.torch;

namespace ResidualLab.Connections;

// Axes: b batch, t position, d width (the last axis).

/// <summary>
/// nGPT, the normalised transformer: the hidden state lives on the unit sphere and every sublayer moves it
/// towards the sublayer's normalised output, h &lt;- Norm(h + alpha (Norm(F(h)) - h)), Norm(x) = x / |x|, with
/// alpha [d] a learned per-dimension "eigen learning rate", alpha = |a alpha_init / alpha_scale|, a stored at
/// alpha_scale (alpha_init = 0.05, alpha_scale = 1/sqrt(d)). No norm before the sublayer: it reads h itself.
/// Loshchilov et al. 2024, "nGPT: Normalized Transformer with Representation Learning on the Hypersphere"
/// (arXiv 2410.01131), eq. 10-11 and sec. 2.6; the parametrisation of the scales as in the authors' code.
/// Model side (<see cref="ModelNeeds.UnitNormWeights"/>, done by the GPT): the token and position embeddings and
/// every matrix reading from (rows) or writing into (columns) the stream are unit norm along d at init and after
/// every optimiser step; no weight decay; each head's query and key are normalised and scaled by s_qk [d]
/// (init 1, scale 1/sqrt(d)) and the attention's softmax scale is sqrt(d_head); the MLP's hidden pre-activation is
/// scaled by s_u sqrt(d) (s_u per hidden unit, init 1, scale 1); no final norm: logits = s_z (E h), s_z per
/// vocabulary entry (init 1, scale 1/sqrt(d)).
/// Choices where this lab's GPT differs from the paper's: the learned absolute position embedding is kept (the
/// paper uses RoPE) and the embedding sum is normalised (<see cref="NGptScheme.Expand"/>); the MLP is GELU, not
/// SwiGLU, so s_u scales its one hidden pre-activation; the head stays tied to the (normalised) token embedding;
/// biases follow model.bias (the paper has none: set model.bias = false to match); warmup and the learning rate
/// follow the run's config. The vision models do not take it: their branches end in BatchNorm and the blocks
/// apply a ReLU after the depth step, so no hidden state is on the sphere, and their convolutions are not
/// normalised matrices.
/// On the CIFAR ResNet: does not apply: the vision models lack what it needs (see models).
/// </summary>
public sealed record NGptScheme(double AlphaInit = NGptScheme.DefaultAlphaInit, double AlphaScale = 0) : ConnectionScheme
{
    /// <summary>The paper's alpha_init for attention and MLP (of the order of 1 / n_layer).</summary>
    public const double DefaultAlphaInit = 0.05;

    /// <summary>Initial eigen learning rate alpha of every dimension, in [0, 1].</summary>
    public double AlphaInit { get; } = SchemeArguments.InRange(AlphaInit, 0, 1, "ngpt", "alpha_init");
    /// <summary>The scale alpha is stored at, in [0, 1]; 0: 1/sqrt(d_model).</summary>
    public double AlphaScale { get; } = SchemeArguments.InRange(AlphaScale, 0, 1, "ngpt", "alpha_scale");

    /// <inheritdoc/>
    public override string Name => "ngpt";

    /// <inheritdoc/>
    public override ModelNeeds Needs => ModelNeeds.UnitNormWeights;

    /// <summary>alpha_scale; 0 stands for the paper's 1/sqrt(d).</summary>
    public override Connection Build(ConnectionSite site) =>
        new NGptResidual(site.Width, AlphaInit, AlphaScale > 0 ? AlphaScale : 1 / Math.Sqrt(site.Width));

    /// <summary>
    /// Norm(F(h)) (3 d + 1: squares, sum, root, division), the rates |a alpha_init / alpha_scale| (d), the move
    /// h + alpha (. - h) (3 d) and the final Norm (3 d + 1). The model-side work of unit-norm weights (normalised
    /// q and k, the MLP and logit scales) is not the connection's and is not counted.
    /// </summary>
    internal override double ForwardFlops(ConnectionSite site) => 10.0 * site.Width + 2;

    /// <summary>Expand normalises the embedding: 3 d + 1.</summary>
    internal override double StreamFlops(int width) => 3.0 * width + 1;

    /// <summary>The embedding onto the sphere.</summary>
    public override Tensor Expand(Tensor x0) => Unit(x0);

    /// <inheritdoc/>
    public override IReadOnlyDictionary<string, object> Options =>
        new Dictionary<string, object> { ["alpha_init"] = AlphaInit, ["alpha_scale"] = AlphaScale };

    /// <summary>x / |x| over the last axis.</summary>
    public static Tensor Unit(Tensor x) => x / linalg.vector_norm(x, dims: [-1], keepdim: true);
}

internal sealed class NGptResidual : Connection
{
    readonly Parameter alpha;    // a [d], stored at alpha_scale
    readonly double factor;      // alpha_init / alpha_scale

    public NGptResidual(int width, double alphaInit, double alphaScale) : base(nameof(NGptResidual))
    {
        alpha = nn.Parameter(full(width, alphaScale));
        factor = alphaInit / alphaScale;
        RegisterComponents();
    }

    /// <summary>The eigen learning rates |a alpha_init / alpha_scale|, [d].</summary>
    public Tensor EigenLearningRates => (alpha * factor).abs();

    public override Branch Prepare(Tensor stream, LayerContext ctx) => new(stream, stream);

    public override Tensor Combine(Tensor output, Branch branch, LayerContext ctx)
    {
        var h = branch.Stream;
        return NGptScheme.Unit(h + EigenLearningRates * (NGptScheme.Unit(output) - h));
    }
}
