using static TorchSharp.torch;

namespace ResidualLab.Connections;

// Axes: b batch, t position, d width (the last axis).

/// <summary>
/// Mix-LN: post-norm in the first floor(alpha L) layers, x_{l+1} = LN(x_l + F(x_l)), and pre-norm in the
/// rest, x_{l+1} = x_l + F(LN(x_l)). Both sublayers of a layer use the same rule.
/// Li, Yin and Liu 2024, "Mix-LN: Unleashing the Power of Deeper Layers by Combining Pre-LN and Post-LN"
/// (arXiv 2412.13795), sec. 4: alpha = 0.25 is the paper's setting for its LLaMA models (the default here).
/// On the CIFAR ResNet: the fraction is of a stage's blocks (pre-norm at depth 8).
/// </summary>
public sealed record MixLnScheme(double PostFraction = MixLnScheme.DefaultPostFraction) : ConnectionScheme
{
    /// <summary>The paper's alpha: a quarter of the layers post-norm.</summary>
    public const double DefaultPostFraction = 0.25;

    /// <summary>alpha, the fraction of layers from the input that are post-norm, in [0, 1].</summary>
    public double PostFraction { get; } = SchemeArguments.InRange(PostFraction, 0, 1, "mix-ln", "post_fraction");

    /// <inheritdoc/>
    public override string Name => "mix-ln";
    /// <inheritdoc/>
    public override Connection Build(ConnectionSite site) => new MixLnResidual(site, PostLayers(site.LayerCount) > site.Layer);
    /// <summary>One LN and one addition, before the sublayer (pre-norm) or after it (post-norm): 7 d + d.</summary>
    internal override double ForwardFlops(ConnectionSite site) => ConnectionFlops.LayerNorm(site.Width) + site.Width;
    /// <inheritdoc/>
    public override IReadOnlyDictionary<string, object> Options => new Dictionary<string, object> { ["post_fraction"] = PostFraction };

    /// <summary>How many of <paramref name="layers"/> layers are post-norm: floor(alpha L).</summary>
    public int PostLayers(int layers) => (int)Math.Floor(PostFraction * layers + 1e-9);
}

internal sealed class MixLnResidual : Connection
{
    readonly nn.Module<Tensor, Tensor> norm;

    /// <summary>True: this sublayer is post-norm; false: pre-norm.</summary>
    public bool IsPostNorm { get; }

    public MixLnResidual(ConnectionSite site, bool postNorm) : base(nameof(MixLnResidual))
    {
        norm = site.MakeNorm();
        IsPostNorm = postNorm;
        RegisterComponents();
    }

    public override Branch Prepare(Tensor stream, LayerContext ctx) => new(IsPostNorm ? stream : norm.call(stream), stream);

    public override Tensor Combine(Tensor output, Branch branch, LayerContext ctx) =>
        IsPostNorm ? norm.call(branch.Stream + output) : branch.Stream + output;
}
