using ResidualLab.Layers;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace ResidualLab.Connections;

// Axes: b batch, h heads, t positions, d width (the last axis). Equations per sequence X [t, d].

/// <summary>
/// What SAS (<see cref="SasScheme"/>) and SAS-P (<see cref="SasPScheme"/>) share: the shaped attention of He and Hofmann,
/// ICLR 2024, "Simplifying Transformer Blocks" (arXiv 2311.01906, Eq. 5 and App. B Eqs. 12-13; the authors' code
/// bobby-he/simplified_transformers, <c>model_utils.py</c>), with the value and output projections removed:
/// <code>
/// MHA~(X) = Concat_h((alpha_h I + beta_h A_h(X) - gamma_h C) X_h),   A_h(X) = softmax(X W_h^Q (X W_h^K)^T / sqrt(d_h) + M)
/// </code>
/// X_h the h-th column block of the input itself, C the uniform causal matrix (C_ts = 1 / (t + 1), s &lt;= t). With W^Q = 0
/// (and its bias) A_h = C at init, and alpha = beta = gamma = 1 make the attention matrix the identity: the attention
/// sub-block is the identity map at init.
/// Defaults as the paper and the code give them: alpha, beta, gamma trainable per head, init 1 (<c>attn_mat_skip_gain</c>,
/// <c>attn_mat_resid_gain</c>, <c>centre_attn_gain</c>); beta_SA, the attention branch's gain, trainable, init 1; beta_FF, the
/// MLP branch's gain, trainable, 0.1 at L = 18 ("O(1/sqrt(depth))", <c>skipless.yaml</c>); W^Q = 0, W^K N(0, 0.02^2), zero
/// biases; every value and projection matrix the identity except block 0's value W = alpha_V I + beta_V ΔW (alpha_V =
/// beta_V = 1, ΔW = 0 at init; paper App. C, "a very small boost"); the MLP c_fc (d -&gt; 4d), ReLU, c_proj (4d -&gt; d),
/// no biases, both N(0, 0.02^2) without depth scaling; no weight decay on any gain; norms RMSNorm (the code's default
/// <c>norm_type: rmsnorm</c>; option norm); with norms off, a LayerNorm on block 0's attention input only ("always use LN in first layer
/// to normalise input activation norms"), the final LayerNorm kept.
/// Choices left open, made here: beta_FF = 0.1 sqrt(18 / L) at the model's depth L when option mlp_gain is 0 (the code's
/// comment anchored at its L = 18); the RMSNorm is the lab's (eps 1e-6 inside the root; the code adds 1e-5 to the RMS, the
/// paper says 1e-8: immaterial at init); with norms off block 0's attention input gets the model's norm (LayerNorm in the
/// GPT, as the code); the position embeddings are the model's learned ones (the code's GPT-2; the paper's text says sinusoidal).
/// On the CIFAR ResNet: does not apply (it shapes an attention).
/// </summary>
public abstract record ShapedAttentionScheme : ConnectionScheme
{
    /// <summary>beta_FF at the authors' depth 18.</summary>
    public const double MlpGainAtDepth18 = 0.1;

    /// <summary>W^K's init std and the MLP's (the authors' N(0, 0.02^2)).</summary>
    public const double Std = 0.02;

    /// <summary>Checks and keeps the options of <paramref name="name"/>.</summary>
    private protected ShapedAttentionScheme(bool norm, double mlpGain, bool firstValue, bool perHead, string name)
    {
        Norm = norm;
        MlpGain = SchemeArguments.InRange(mlpGain, 0, 10, name, "mlp_gain");
        FirstValue = firstValue;
        PerHead = perHead;
    }

    /// <summary>RMSNorm before the sublayers (false: none, but a LayerNorm on block 0's attention input).</summary>
    public bool Norm { get; }

    /// <summary>beta_FF at init; 0: 0.1 sqrt(18 / L).</summary>
    public double MlpGain { get; }

    /// <summary>Block 0's value is alpha_V I + beta_V ΔW (learned) instead of the identity.</summary>
    public bool FirstValue { get; }

    /// <summary>alpha, beta, gamma per head (else one each per layer).</summary>
    public bool PerHead { get; }

    /// <summary>beta_FF at init in a model of <paramref name="layers"/> layers.</summary>
    public double MlpGainAt(int layers) => MlpGain > 0 ? MlpGain : MlpGainAtDepth18 * Math.Sqrt(18.0 / layers);

    /// <inheritdoc/>
    public override ModelNeeds Needs => ModelNeeds.AttentionShape | ModelNeeds.MlpShape;

    /// <summary>alpha I + beta A - gamma C with 1, 1, 1 trainable; zero queries, N(0, 0.02^2) keys; identity values (block 0:
    /// identity plus learned) and output.</summary>
    public override AttentionShape AttentionAt(ConnectionSite site) => new()
    {
        Identity = 1,
        Softmax = 1,
        Centre = 1,
        Gains = PerHead ? ShapeGains.PerHead : ShapeGains.PerLayer,
        ZeroQuery = true,
        KeyStd = Std,
        Value = site.Layer == 0 && FirstValue ? ProjectionShape.IdentityPlusLearned : ProjectionShape.Identity,
        Output = ProjectionShape.Identity,
    };

    /// <summary>ReLU, no biases, N(0, 0.02^2) matrices.</summary>
    public override MlpShape MlpAt(ConnectionSite site) => new()
    {
        Activation = MlpActivation.LeakyRelu,
        Bias = false,
        Init = MatrixInit.Normal,
        Std = Std,
    };

    /// <summary>The norm before a sublayer: RMSNorm, or with norms off the model's norm at block 0's attention (<paramref name="firstAttention"/>) only.</summary>
    private protected nn.Module<Tensor, Tensor>? MakeNorm(ConnectionSite site, bool firstAttention) =>
        Norm ? new RMSNorm(site.Width) : firstAttention ? site.MakeNorm() : null;

    /// <summary>Whether the site is the attention sublayer of its layer (the first of the two).</summary>
    private protected static bool IsAttention(ConnectionSite site) => site.SublayerIndex % site.SublayersPerLayer == 0;

    /// <summary>The norm's FLOPs at the site (none where there is no norm).</summary>
    private protected double NormFlops(ConnectionSite site, bool firstAttention) =>
        Norm ? ConnectionFlops.RmsNorm(site.Width) : firstAttention ? ConnectionFlops.LayerNorm(site.Width) : 0;

    /// <inheritdoc/>
    public override IReadOnlyDictionary<string, object> Options => new Dictionary<string, object>
    { ["norm"] = Norm, ["mlp_gain"] = MlpGain, ["first_value"] = FirstValue, ["per_head"] = PerHead };
}

/// <summary>The attention sub-block's connection: X^ = beta_SA MHA~(N_1(X)), no skip. The normed input is left in the pass state for a
/// parallel MLP to read (SAS-P's one shared norm).</summary>
internal sealed class ShapedAttentionConnection : Connection
{
    /// <summary>The pass-state key of the attention's normed input.</summary>
    public const string InputKey = "shaped-attention.input";

    readonly nn.Module<Tensor, Tensor>? norm;
    readonly Parameter gain;   // beta_SA

    public ShapedAttentionConnection(nn.Module<Tensor, Tensor>? norm) : base(nameof(ShapedAttentionConnection))
    {
        this.norm = norm;
        gain = nn.Parameter(ones(1));
        RegisterComponents();
    }

    public override Branch Prepare(Tensor stream, LayerContext ctx)
    {
        var input = norm is null ? stream : norm.call(stream);
        ctx.PassState[InputKey] = input;
        return new(input, stream);
    }

    public override Tensor Combine(Tensor output, Branch branch, LayerContext ctx) => gain * output;
}

/// <summary>The MLP sub-block's connection: X_out = alpha_FF X^ + beta_FF MLP(N_2(X^)) (SAS), or, in parallel with the attention,
/// X_out = X^ + beta_FF MLP(N_1(X_in)) reading the attention's normed input (SAS-P: the stream it writes into is X^ = beta_SA MHA~).</summary>
internal sealed class ShapedMlpConnection : Connection
{
    readonly nn.Module<Tensor, Tensor>? norm;
    readonly Parameter? skip;  // alpha_FF (SAS)
    readonly Parameter gain;   // beta_FF
    readonly bool parallel;

    public ShapedMlpConnection(nn.Module<Tensor, Tensor>? norm, double mlpGain, bool parallel) : base(nameof(ShapedMlpConnection))
    {
        this.norm = norm;
        this.parallel = parallel;
        if (!parallel) skip = nn.Parameter(ones(1));
        gain = nn.Parameter(full(1, mlpGain));
        RegisterComponents();
    }

    public override Branch Prepare(Tensor stream, LayerContext ctx)
    {
        if (!parallel) return new(norm is null ? stream : norm.call(stream), stream);
        if (!ctx.PassState.TryGetValue(ShapedAttentionConnection.InputKey, out var input))
            throw new InvalidOperationException("a parallel shaped-attention MLP reads its layer's attention input; run the attention sublayer first");
        return new(input, stream);
    }

    public override Tensor Combine(Tensor output, Branch branch, LayerContext ctx) =>
        (skip is null ? branch.Stream : skip * branch.Stream) + gain * output;
}
