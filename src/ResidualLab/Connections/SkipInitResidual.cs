using TorchSharp.Modules;
using static TorchSharp.torch;

namespace ResidualLab.Connections;

// Axes: b batch, t position, d width (the last axis).

/// <summary>
/// SkipInit: x_{l+1} = x_l + a F(LN(x_l)), one learnable scalar a = 0 at init, the branch's norm kept
/// (ReZero without removing the norm), so every block is the identity at init.
/// De and Smith 2020, "Batch Normalization Biases Residual Blocks Towards the Identity Function in
/// Deep Networks" (arXiv 2002.10444).
/// On the CIFAR ResNet: gain a = 0 at init.
/// </summary>
public sealed record SkipInitScheme : ConnectionScheme
{
    /// <inheritdoc/>
    public override string Name => "skipinit";
    /// <inheritdoc/>
    public override Connection Build(ConnectionSite site) => new SkipInitResidual(site);
    /// <summary>LN(x), then x + a y: 7 d + 2 d.</summary>
    internal override double ForwardFlops(ConnectionSite site) => ConnectionFlops.LayerNorm(site.Width) + 2.0 * site.Width;
    /// <inheritdoc/>
    public override IReadOnlyDictionary<string, object> Options => new Dictionary<string, object>();
}

internal sealed class SkipInitResidual : Connection
{
    readonly nn.Module<Tensor, Tensor> norm;
    readonly Parameter gain;

    public SkipInitResidual(ConnectionSite site) : base(nameof(SkipInitResidual))
    {
        norm = site.MakeNorm();
        gain = nn.Parameter(zeros(1));
        RegisterComponents();
    }

    /// <summary>The residual weight a (0 at init).</summary>
    public Parameter Gain => gain;

    public override Branch Prepare(Tensor stream, LayerContext ctx) => new(norm.call(stream), stream);

    public override Tensor Combine(Tensor output, Branch branch, LayerContext ctx) => branch.Stream + gain * output;
}
