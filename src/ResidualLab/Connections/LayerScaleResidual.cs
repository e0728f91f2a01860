using TorchSharp.Modules;
using static TorchSharp.torch;

namespace ResidualLab.Connections;

// Axes: b batch, t position, d width (the last axis).

/// <summary>
/// LayerScale: x_{l+1} = x_l + diag(l) F(LN(x_l)), a learnable per-channel scale l initialised to a
/// small constant (CaiT: 0.1 up to 18 blocks, 1e-5 at 24, 1e-6 deeper).
/// Touvron et al. 2021, "Going deeper with Image Transformers" (CaiT, arXiv 2103.17239).
/// On the CIFAR ResNet: l = 0.1 at init.
/// </summary>
public sealed record LayerScaleScheme(double Init = LayerScaleScheme.DefaultInit) : ConnectionScheme
{
    /// <summary>The default initial value of every entry of l.</summary>
    public const double DefaultInit = 0.1;

    /// <summary>The initial value of every entry of l, in [0, 10].</summary>
    public double Init { get; } = SchemeArguments.InRange(Init, 0, 10, "layerscale", "init");

    /// <inheritdoc/>
    public override string Name => "layerscale";
    /// <inheritdoc/>
    public override Connection Build(ConnectionSite site) => new LayerScaleResidual(site, Init);
    /// <summary>LN(x), then x + diag(l) y: 7 d + 2 d.</summary>
    internal override double ForwardFlops(ConnectionSite site) => ConnectionFlops.LayerNorm(site.Width) + 2.0 * site.Width;
    /// <inheritdoc/>
    public override IReadOnlyDictionary<string, object> Options => new Dictionary<string, object> { ["init"] = Init };
}

internal sealed class LayerScaleResidual : Connection
{
    readonly nn.Module<Tensor, Tensor> norm;
    readonly Parameter scale;

    public LayerScaleResidual(ConnectionSite site, double init) : base(nameof(LayerScaleResidual))
    {
        norm = site.MakeNorm();
        scale = nn.Parameter(full(site.Width, init));
        RegisterComponents();
    }

    /// <summary>The per-channel scale l, [d].</summary>
    public Parameter Scale => scale;

    public override Branch Prepare(Tensor stream, LayerContext ctx) => new(norm.call(stream), stream);

    public override Tensor Combine(Tensor output, Branch branch, LayerContext ctx) => branch.Stream + scale * output;
}
