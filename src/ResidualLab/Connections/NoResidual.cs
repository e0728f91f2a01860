using static TorchSharp.torch;

namespace ResidualLab.Connections;

/// <summary>
/// No residual connection: x_{l+1} = F(LN(x_l)), or x_{l+1} = F(x_l) with <c>norm = false</c>.
/// The control arm of every experiment here: the stream is replaced, not updated.
/// On the CIFAR ResNet: plain block relu(F(BN x)).
/// </summary>
public sealed record NoResidualScheme(bool Norm = true) : ConnectionScheme
{
    /// <inheritdoc/>
    public override string Name => "none";
    /// <inheritdoc/>
    public override Connection Build(ConnectionSite site) => new NoResidual(site, Norm);
    /// <summary>LN(x) when normed; the stream is replaced, nothing is added.</summary>
    internal override double ForwardFlops(ConnectionSite site) => Norm ? ConnectionFlops.LayerNorm(site.Width) : 0;
    /// <inheritdoc/>
    public override IReadOnlyDictionary<string, object> Options => new Dictionary<string, object> { ["norm"] = Norm };
}

internal sealed class NoResidual : Connection
{
    readonly nn.Module<Tensor, Tensor>? norm;

    public NoResidual(ConnectionSite site, bool useNorm) : base(nameof(NoResidual))
    {
        norm = useNorm ? site.MakeNorm() : null;
        RegisterComponents();
    }

    public override Branch Prepare(Tensor stream, LayerContext ctx) =>
        new(norm is null ? stream : norm.call(stream), stream);

    public override Tensor Combine(Tensor output, Branch branch, LayerContext ctx) => output;
}
