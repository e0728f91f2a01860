using static TorchSharp.torch;

namespace ResidualLab.Connections;

// Axes: b batch, t position, d width (the last axis).

/// <summary>
/// DeepNorm: x_{l+1} = LN(alpha x_l + F(x_l)), and at init the weights F writes into the stream with
/// (value and output projections, feed-forward) are scaled by beta.
/// Wang et al. 2022, "DeepNet: Scaling Transformers to 1,000 Layers" (arXiv 2203.00555):
/// decoder-only with N layers: alpha = (2N)^(1/4), beta = (8N)^(-1/4). The 2N there counts the
/// residual sublayers (attention and feed-forward per layer), so with S residual sublayers
/// alpha = S^(1/4) and beta = (4S)^(-1/4): the paper's values for the GPT (S = 2N), and the same rule
/// for models whose blocks hold another number of sublayers.
/// On the CIFAR ResNet: alpha, beta from the blocks of the stage.
/// </summary>
public sealed record DeepNormScheme : ConnectionScheme
{
    /// <inheritdoc/>
    public override string Name => "deepnorm";
    /// <inheritdoc/>
    public override Connection Build(ConnectionSite site) => new DeepNormResidual(site);
    /// <summary>alpha x + y, then LN: 2 d + 7 d.</summary>
    internal override double ForwardFlops(ConnectionSite site) => 2.0 * site.Width + ConnectionFlops.LayerNorm(site.Width);
    /// <inheritdoc/>
    public override IReadOnlyDictionary<string, object> Options => new Dictionary<string, object>();

    /// <summary>alpha for a model with <paramref name="sublayers"/> residual sublayers.</summary>
    public static double Alpha(int sublayers) => Math.Pow(sublayers, 0.25);

    /// <summary>beta for a model with <paramref name="sublayers"/> residual sublayers.</summary>
    public static double Beta(int sublayers) => Math.Pow(4.0 * sublayers, -0.25);
}

internal sealed class DeepNormResidual : Connection
{
    readonly nn.Module<Tensor, Tensor> norm;

    public double Alpha { get; }
    public double Beta { get; }

    public DeepNormResidual(ConnectionSite site) : base(nameof(DeepNormResidual))
    {
        norm = site.MakeNorm();
        Alpha = DeepNormScheme.Alpha(site.SublayerCount);
        Beta = DeepNormScheme.Beta(site.SublayerCount);
        RegisterComponents();
    }

    public override void InitializeSublayer(IResidualSublayer sublayer) => sublayer.ScaleResidualWeights(Beta);

    public override Branch Prepare(Tensor stream, LayerContext ctx) => new(stream, stream);

    public override Tensor Combine(Tensor output, Branch branch, LayerContext ctx) => norm.call(branch.Stream * Alpha + output);
}
