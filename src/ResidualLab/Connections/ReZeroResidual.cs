using TorchSharp.Modules;
using static TorchSharp.torch;

namespace ResidualLab.Connections;

// Axes: b batch, t position, d width (the last axis).

/// <summary>
/// ReZero: x_{l+1} = x_l + a F(x_l), one learnable scalar a = 0 at init and no normalisation,
/// so every block is the identity at init.
/// Bachlechner et al. 2020, "ReZero is All You Need: Fast Convergence at Large Depth" (arXiv 2003.04887).
/// On the CIFAR ResNet: gain a = 0 at init.
/// </summary>
public sealed record ReZeroScheme : ConnectionScheme
{
    /// <inheritdoc/>
    public override string Name => "rezero";
    /// <inheritdoc/>
    public override Connection Build(ConnectionSite site) => new ReZeroResidual();
    /// <summary>x + a y: 2 d.</summary>
    internal override double ForwardFlops(ConnectionSite site) => 2.0 * site.Width;
    /// <inheritdoc/>
    public override IReadOnlyDictionary<string, object> Options => new Dictionary<string, object>();
}

internal sealed class ReZeroResidual : Connection
{
    readonly Parameter gain;

    public ReZeroResidual() : base(nameof(ReZeroResidual))
    {
        gain = nn.Parameter(zeros(1));
        RegisterComponents();
    }

    /// <summary>The residual weight a (0 at init).</summary>
    public Parameter Gain => gain;

    public override Branch Prepare(Tensor stream, LayerContext ctx) => new(stream, stream);

    public override Tensor Combine(Tensor output, Branch branch, LayerContext ctx) => branch.Stream + gain * output;
}
