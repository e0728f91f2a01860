using TorchSharp.Modules;
using static TorchSharp.torch;

namespace ResidualLab.Connections;

// Axes: b batch, t position, d width (the last axis); k the number of earlier streams.

/// <summary>
/// DenseFormer: a pre-norm model whose sublayer k reads a depth-weighted average (DWA) of the embedding
/// and every earlier sublayer's result, y_k = sum_{j &lt;= k} alpha_kj x_j, then x_{k+1} = y_k + F(LN(y_k));
/// the model's output is the DWA over all of them. alpha starts as the identity (alpha_kk = 1, others 0),
/// so at init the model is exactly the pre-norm model.
/// Pagliardini et al. 2024, "DenseFormer: Enhancing Information Flow in Transformers via Depth Weighted
/// Averaging" (arXiv 2402.02622). The paper averages after every block; here after every residual
/// sublayer (attention and MLP separately in the GPT), with no dilation.
/// The x_j are the model's <see cref="LayerContext.History"/>: the embedding and each sublayer's result.
/// </summary>
public sealed record DenseFormerScheme : ConnectionScheme
{
    /// <inheritdoc/>
    public override string Name => "denseformer";
    /// <inheritdoc/>
    public override Connection Build(ConnectionSite site) => new DenseFormerResidual(site);
    /// <summary>
    /// Sublayer k &gt; 0 first averages the k + 1 streams before it (2 (k + 1) d); LN(y) and y + F: 7 d + d; the last
    /// sublayer also averages all S + 1 streams for the output (2 (S + 1) d).
    /// </summary>
    internal override double ForwardFlops(ConnectionSite site) =>
        (site.SublayerIndex > 0 ? ConnectionFlops.WeightedSum(site.SublayerIndex + 1, site.Width) : 0)
        + ConnectionFlops.LayerNorm(site.Width) + site.Width
        + (site.SublayerIndex == site.SublayerCount - 1 ? ConnectionFlops.WeightedSum(site.SublayerCount + 1, site.Width) : 0);
    /// <inheritdoc/>
    public override IReadOnlyDictionary<string, object> Options => new Dictionary<string, object>();
}

internal sealed class DenseFormerResidual : Connection
{
    readonly nn.Module<Tensor, Tensor> norm;
    readonly Parameter? weights;       // [k + 1]: the DWA before this sublayer (none before the first)
    readonly Parameter? output_weights; // [S + 1]: the DWA after the model's last sublayer
    readonly int index;

    public DenseFormerResidual(ConnectionSite site) : base(nameof(DenseFormerResidual))
    {
        index = site.SublayerIndex;
        norm = site.MakeNorm();
        if (index > 0) weights = nn.Parameter(Identity(index + 1));
        if (index == site.SublayerCount - 1) output_weights = nn.Parameter(Identity(site.SublayerCount + 1));
        RegisterComponents();
    }

    /// <summary>DWA weights over j = 0..count-1 that select the last: (0, ..., 0, 1).</summary>
    static Tensor Identity(int count)
    {
        var w = zeros(count);
        w[count - 1].fill_(1);
        return w;
    }

    public override Branch Prepare(Tensor stream, LayerContext ctx)
    {
        if (ctx.History.Count != index + 1)
            throw new InvalidOperationException(
                $"DenseFormer at sublayer {index} needs the embedding and every earlier sublayer's result in LayerContext.History; found {ctx.History.Count} entries");
        var y = weights is null ? stream : Average(weights, ctx.History);
        return new(norm.call(y), y);
    }

    public override Tensor Combine(Tensor output, Branch branch, LayerContext ctx)
    {
        var x = branch.Stream + output;
        return output_weights is null ? x : Average(output_weights, [.. ctx.History, x]);
    }

    /// <summary>sum_j w_j x_j as a running sum: backward keeps references to the x_j, not a stacked copy
    /// (measured on the reference GPT: a stack + matmul doubled pre-norm's step memory).</summary>
    static Tensor Average(Tensor weights, IReadOnlyList<Tensor> streams)
    {
        var sum = weights[0] * streams[0];
        for (int j = 1; j < streams.Count; j++) sum = sum + weights[j] * streams[j];
        return sum;
    }
}
