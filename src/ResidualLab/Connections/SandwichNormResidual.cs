using static TorchSharp.torch;

namespace ResidualLab.Connections;

// Axes: b batch, t position, d width (the last axis).

/// <summary>
/// Sandwich-LN residual: x_{l+1} = x_l + LN2(F(LN1(x_l))): pre-norm plus a norm on the branch's output.
/// Ding et al. 2021, "CogView: Mastering Text-to-Image Generation via Transformers" (arXiv 2105.13290).
/// On the CIFAR ResNet: BNs before and after the branch.
/// </summary>
public sealed record SandwichScheme : ConnectionScheme
{
    /// <inheritdoc/>
    public override string Name => "sandwich";
    /// <inheritdoc/>
    public override Connection Build(ConnectionSite site) => new SandwichNormResidual(site);
    /// <summary>LN1(x), LN2(y), x + LN2(y): 2 x 7 d + d.</summary>
    internal override double ForwardFlops(ConnectionSite site) => 2 * ConnectionFlops.LayerNorm(site.Width) + site.Width;
    /// <inheritdoc/>
    public override IReadOnlyDictionary<string, object> Options => new Dictionary<string, object>();
}

internal sealed class SandwichNormResidual : Connection
{
    readonly nn.Module<Tensor, Tensor> norm;
    readonly nn.Module<Tensor, Tensor> out_norm;

    public SandwichNormResidual(ConnectionSite site) : base(nameof(SandwichNormResidual))
    {
        norm = site.MakeNorm();
        out_norm = site.MakeNorm();
        RegisterComponents();
    }

    public override Branch Prepare(Tensor stream, LayerContext ctx) => new(norm.call(stream), stream);

    public override Tensor Combine(Tensor output, Branch branch, LayerContext ctx) => branch.Stream + out_norm.call(output);
}
