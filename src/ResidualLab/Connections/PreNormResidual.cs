using static TorchSharp.torch;

namespace ResidualLab.Connections;

/// <summary>
/// Pre-norm residual: x_{l+1} = x_l + F(LN(x_l)).
/// Xiong et al. 2020, "On Layer Normalization in the Transformer Architecture" (arXiv 2002.04745); GPT-2.
/// On the CIFAR ResNet: adds a BN before the branch.
/// </summary>
public sealed record PreNormScheme : ConnectionScheme
{
    /// <inheritdoc/>
    public override string Name => "pre-norm";
    /// <inheritdoc/>
    public override Connection Build(ConnectionSite site) => new PreNormResidual(site);
    /// <summary>LN(x), then x + y: 7 d + d.</summary>
    internal override double ForwardFlops(ConnectionSite site) => ConnectionFlops.LayerNorm(site.Width) + site.Width;
    /// <inheritdoc/>
    public override IReadOnlyDictionary<string, object> Options => new Dictionary<string, object>();
}

internal sealed class PreNormResidual : Connection
{
    readonly nn.Module<Tensor, Tensor> norm;

    public PreNormResidual(ConnectionSite site) : base(nameof(PreNormResidual))
    {
        norm = site.MakeNorm();
        RegisterComponents();
    }

    public override Branch Prepare(Tensor stream, LayerContext ctx) => new(norm.call(stream), stream);

    public override Tensor Combine(Tensor output, Branch branch, LayerContext ctx) => branch.Stream + output;
}
