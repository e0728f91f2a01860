using static TorchSharp.torch;

namespace ResidualLab.Connections;

/// <summary>
/// Post-norm residual: x_{l+1} = LN(x_l + F(x_l)).
/// Vaswani et al. 2017, "Attention Is All You Need" (arXiv 1706.03762), section 3.1.
/// On the CIFAR ResNet: BN after the sum.
/// </summary>
public sealed record PostNormScheme : ConnectionScheme
{
    /// <inheritdoc/>
    public override string Name => "post-norm";
    /// <inheritdoc/>
    public override Connection Build(ConnectionSite site) => new PostNormResidual(site);
    /// <summary>x + y, then LN: d + 7 d.</summary>
    internal override double ForwardFlops(ConnectionSite site) => site.Width + ConnectionFlops.LayerNorm(site.Width);
    /// <inheritdoc/>
    public override IReadOnlyDictionary<string, object> Options => new Dictionary<string, object>();
}

internal sealed class PostNormResidual : Connection
{
    readonly nn.Module<Tensor, Tensor> norm;

    public PostNormResidual(ConnectionSite site) : base(nameof(PostNormResidual))
    {
        norm = site.MakeNorm();
        RegisterComponents();
    }

    public override Branch Prepare(Tensor stream, LayerContext ctx) => new(stream, stream);

    public override Tensor Combine(Tensor output, Branch branch, LayerContext ctx) => norm.call(branch.Stream + output);
}
