using static TorchSharp.torch;

namespace ResidualLab.Connections;

// Axes: b batch, t position, d width (the last axis).

/// <summary>
/// LayerNorm scaling: pre-norm whose norm output is scaled by 1/sqrt(l), l the 1-based index of the layer:
/// x_{l+1} = x_l + F(LN(x_l) / sqrt(l)). Both sublayers of a transformer layer share its l.
/// Sun et al. 2025, "The Curse of Depth in Large Language Models" (arXiv 2502.05795), eq. 5. The paper
/// scales every LayerNorm of layer l, here the ones in front of the sublayers; the model's final norm is
/// not scaled (the paper does not count it as a layer).
/// On the CIFAR ResNet: l counts the blocks of a stage (pre-norm at depth 8).
/// </summary>
public sealed record LayerNormScalingScheme : ConnectionScheme
{
    /// <inheritdoc/>
    public override string Name => "layernorm-scaling";
    /// <inheritdoc/>
    public override Connection Build(ConnectionSite site) => new LayerNormScalingResidual(site);
    /// <summary>LN(x) / sqrt(l), then x + y: 7 d + d + d.</summary>
    internal override double ForwardFlops(ConnectionSite site) => ConnectionFlops.LayerNorm(site.Width) + 2.0 * site.Width;
    /// <inheritdoc/>
    public override IReadOnlyDictionary<string, object> Options => new Dictionary<string, object>();
}

internal sealed class LayerNormScalingResidual : Connection
{
    readonly nn.Module<Tensor, Tensor> norm;

    /// <summary>1/sqrt(l) for this sublayer's layer l (1-based).</summary>
    public double Scale { get; }

    public LayerNormScalingResidual(ConnectionSite site) : base(nameof(LayerNormScalingResidual))
    {
        norm = site.MakeNorm();
        Scale = 1.0 / Math.Sqrt(site.Layer + 1);
        RegisterComponents();
    }

    public override Branch Prepare(Tensor stream, LayerContext ctx) => new(norm.call(stream) * Scale, stream);

    public override Tensor Combine(Tensor output, Branch branch, LayerContext ctx) => branch.Stream + output;
}
