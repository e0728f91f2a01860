using static TorchSharp.torch;

namespace ResidualLab.Connections;

/// <summary>
/// The residual connection as first published, with no norm of its own: x_{l+1} = x_l + F(x_l).
/// He et al. 2016, "Deep Residual Learning for Image Recognition" (arXiv 1512.03385), eq. 1: the
/// identity shortcut of the ResNet, whose branch F carries its own batch norms.
/// On the CIFAR ResNet: the paper's ResNet.
/// </summary>
public sealed record ResidualScheme : ConnectionScheme
{
    /// <inheritdoc/>
    public override string Name => "residual";
    /// <inheritdoc/>
    public override Connection Build(ConnectionSite site) => new Residual();
    /// <summary>x + y: d.</summary>
    internal override double ForwardFlops(ConnectionSite site) => site.Width;
    /// <inheritdoc/>
    public override IReadOnlyDictionary<string, object> Options => new Dictionary<string, object>();
}

internal sealed class Residual : Connection
{
    public Residual() : base(nameof(Residual)) => RegisterComponents();

    public override Branch Prepare(Tensor stream, LayerContext ctx) => new(stream, stream);

    public override Tensor Combine(Tensor output, Branch branch, LayerContext ctx) => branch.Stream + output;
}
