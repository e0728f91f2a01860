using static TorchSharp.torch;

namespace ResidualLab.Connections;

// Axes: b batch, t position, s the two streams (0: post-norm, 1: dual), d width (the last axis).

/// <summary>
/// ResiDual: a post-norm stream x_a and a dual stream x_d side by side; every sublayer reads x_a and
/// writes its output f into both: x_a &lt;- LN(x_a + f), x_d &lt;- x_d + f. Both start as the embedding, and the
/// model's output is x_a + LN(x_d).
/// Xie et al. 2023, "ResiDual: Transformer with Dual Residual Connections" (arXiv 2304.14802), eq. 6-8;
/// reference code microsoft/ResiDual (x_d starts as the embedding times 1.0, its default scale).
/// The stream is [..., 2, d]; the last sublayer's depth step stores LN(x_d) in the dual slot, so the model's
/// Reduce (the sum of the two) is the paper's output, and the model's own final norm follows it (the paper's
/// output layer takes x_a + LN(x_d) directly).
/// On the CIFAR ResNet: two streams per stage, reduced to their mean.
/// </summary>
public sealed record ResiDualScheme : ConnectionScheme
{
    /// <inheritdoc/>
    public override string Name => "resi-dual";
    /// <inheritdoc/>
    public override Connection Build(ConnectionSite site) => new ResiDualResidual(site);
    /// <summary>x_a + y and its LN (7 d + d), x_d + y (d); the last sublayer adds LN(x_d) (7 d).</summary>
    internal override double ForwardFlops(ConnectionSite site) =>
        ConnectionFlops.LayerNorm(site.Width) + 2.0 * site.Width
        + (site.SublayerIndex == site.SublayerCount - 1 ? ConnectionFlops.LayerNorm(site.Width) : 0);

    /// <summary>The sum of the two streams at the output: d.</summary>
    internal override double StreamFlops(int width) => ConnectionFlops.StreamSum(2, width);
    /// <inheritdoc/>
    public override Tensor Expand(Tensor x0) => Streams.Expand(x0, 2);
    /// <inheritdoc/>
    public override Tensor Reduce(Tensor stream) => Streams.Reduce(stream);
    /// <inheritdoc/>
    public override IReadOnlyDictionary<string, object> Options => new Dictionary<string, object>();
}

internal sealed class ResiDualResidual : Connection
{
    readonly nn.Module<Tensor, Tensor> norm;          // the post-norm stream's LN
    readonly nn.Module<Tensor, Tensor>? dual_norm;    // LN(x_d) at the output, on the last sublayer only

    public ResiDualResidual(ConnectionSite site) : base(nameof(ResiDualResidual))
    {
        norm = site.MakeNorm();
        if (site.SublayerIndex == site.SublayerCount - 1) dual_norm = site.MakeNorm();
        RegisterComponents();
    }

    public override Branch Prepare(Tensor stream, LayerContext ctx) => new(stream.select(-2, 0), stream);

    public override Tensor Combine(Tensor output, Branch branch, LayerContext ctx)
    {
        var post = norm.call(branch.Stream.select(-2, 0) + output);
        var dual = branch.Stream.select(-2, 1) + output;
        if (dual_norm is not null) dual = dual_norm.call(dual);
        return stack([post, dual], -2);
    }
}
