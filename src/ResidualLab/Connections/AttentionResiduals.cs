using ResidualLab.Connections.Kernels;
using ResidualLab.Layers;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace ResidualLab.Connections;

// Axes: b batch, t position, d width (the last axis); k the earlier values (or block summaries) attended over.

/// <summary>
/// Attention Residuals: no running sum; sublayer l reads a softmax-weighted sum of all earlier values,
/// h_l = sum_{i&lt;=l} a_{i,l} v_i, a_{.,l} = softmax_i(w_l . RMSNorm(v_i)), with v_0 the embedding, v_i the
/// output of sublayer i - 1, and w_l one learned pseudo-query per sublayer (0 at init: the uniform average);
/// the sublayer runs on LN(h_l) and the model's output is the same attention with its own query over every value.
/// Block variant (blocks = N > 0): the sublayers form N consecutive blocks of ceil(S / N); the attention runs
/// over the embedding, the sum of each completed block's outputs, and the running sum of the current block's.
/// Kimi Team 2026, "Attention Residuals" (arXiv 2603.15031), eq. 2-4 and the block pseudocode.
/// Choices: every residual sublayer (attention and MLP apart) is a layer; each query has its own key RMSNorm
/// (learned scale, init 1); the embedding is its own first block.
/// Representation: with no stream to add to, the "stream" each depth step returns is the sublayer's output
/// v_{l+1}, so the model's <see cref="LayerContext.History"/> is exactly the list of values; the last depth step
/// returns the model's output aggregate instead.
/// </summary>
public sealed record AttentionResidualsScheme(int Blocks = 0) : ConnectionScheme
{
    /// <summary>0: full AttnRes over every earlier output; N in [1, 4096]: block AttnRes over N block summaries.</summary>
    public int Blocks { get; } = SchemeArguments.InRange(Blocks, 0, 4096, "attn-res", "blocks");

    /// <inheritdoc/>
    public override string Name => "attn-res";
    /// <inheritdoc/>
    public override Connection Build(ConnectionSite site) => new AttentionResiduals(site, Blocks);
    /// <summary>
    /// Sublayer l attends over k sources: RMSNorm of each (4 k d), their dot products with the query (2 k d),
    /// the softmax (3 k) and the weighted sum (2 k d); then LN (7 d). Full: k = l + 1 values. Blocks: k = 1 + the
    /// blocks begun, and the block sums are formed anew (one add of d per value past each block's first).
    /// The last sublayer attends once more, over all S + 1 values, for the model's output.
    /// </summary>
    internal override double ForwardFlops(ConnectionSite site)
    {
        int d = site.Width;
        int blockSize = Blocks <= 0 ? 1 : (site.SublayerCount + Blocks - 1) / Blocks;
        double Attend(int values)
        {
            int blocksBegun = (values - 1 + blockSize - 1) / blockSize;
            int sources = blockSize == 1 ? values : 1 + blocksBegun;
            double sums = blockSize == 1 ? 0 : (double)(values - 1 - blocksBegun) * d;
            return sums + 8.0 * sources * d + 3.0 * sources;
        }
        return Attend(site.SublayerIndex + 1) + ConnectionFlops.LayerNorm(d)
            + (site.SublayerIndex == site.SublayerCount - 1 ? Attend(site.SublayerCount + 1) : 0);
    }
    /// <inheritdoc/>
    public override IReadOnlyDictionary<string, object> Options => new Dictionary<string, object> { ["blocks"] = (long)Blocks };
}

internal sealed class AttentionResiduals : Connection
{
    readonly nn.Module<Tensor, Tensor> norm;       // the sublayer's pre-norm
    readonly RMSNorm key_norm;
    readonly Parameter query;                      // w_l [d]
    readonly RMSNorm? output_key_norm;             // the model output's aggregate, on the last sublayer
    readonly Parameter? output_query;
    readonly int index;
    readonly int blockSize;                        // sublayers per block; 1 = full AttnRes

    public AttentionResiduals(ConnectionSite site, int blocks) : base(nameof(AttentionResiduals))
    {
        index = site.SublayerIndex;
        blockSize = blocks <= 0 ? 1 : (site.SublayerCount + blocks - 1) / blocks;
        norm = site.MakeNorm();
        key_norm = new RMSNorm(site.Width);
        query = nn.Parameter(zeros(site.Width));
        if (index == site.SublayerCount - 1)
        {
            output_key_norm = new RMSNorm(site.Width);
            output_query = nn.Parameter(zeros(site.Width));
        }
        RegisterComponents();
    }

    /// <summary>The depth weights of the last width step, [..., k] (they sum to 1 over k).</summary>
    public Tensor? LastWeights { get; private set; }

    public override Branch Prepare(Tensor stream, LayerContext ctx)
    {
        if (ctx.History.Count != index + 1)
            throw new InvalidOperationException(
                $"Attention Residuals at sublayer {index} needs the embedding and every earlier output in LayerContext.History; found {ctx.History.Count} entries");
        var (h, weights) = Attend(query, key_norm, Sources(ctx.History, ctx));
        LastWeights = weights;
        return new(norm.call(h), stream);
    }

    public override Tensor Combine(Tensor output, Branch branch, LayerContext ctx) =>
        output_query is null ? output : Attend(output_query, output_key_norm!, Sources([.. ctx.History, output], ctx)).Value;

    /// <summary>What is attended over, given the values v_0..v_j: every value (full) or block summaries.</summary>
    List<Tensor> Sources(IReadOnlyList<Tensor> values, LayerContext ctx)
    {
        if (blockSize == 1) return [.. values];
        var sources = new List<Tensor> { values[0] };
        for (int start = 1; start < values.Count; start += blockSize)
            sources.Add(BlockSum(values, start, Math.Min(start + blockSize, values.Count), ctx));
        return sources;
    }

    /// <summary>
    /// values[start] + ... + values[end - 1], kept in the pass's state: a block's running sum grows by one addition per
    /// sublayer and a completed block is summed once per pass, instead of every sublayer summing every block anew (each
    /// sum a [..., d] tensor that lives until the backward pass).
    /// </summary>
    static Tensor BlockSum(IReadOnlyList<Tensor> values, int start, int end, LayerContext ctx)
    {
        string key = $"attn-res.sum.{start}.{end}";
        if (ctx.PassState.TryGetValue(key, out var sum)) return sum;
        sum = end - start == 1 ? values[start] : BlockSum(values, start, end - 1, ctx) + values[end - 1];
        return ctx.PassState[key] = sum;
    }

    /// <summary>The attended value [..., d] and the weights [..., k]: on the CPU one fused kernel (<see cref="AttentionResidualsKernel"/>),
    /// elsewhere <see cref="AttendWithTensorOps"/>; the same function.</summary>
    internal static (Tensor Value, Tensor Weights) Attend(Tensor query, RMSNorm keyNorm, List<Tensor> sources) =>
        AttentionResidualsKernel.Applies(sources, query)
            ? AttentionResidualsKernel.Run(sources, query, keyNorm.Weight, keyNorm.Eps)
            : AttendWithTensorOps(query, keyNorm, sources);

    /// <summary>The definition: softmax over the sources of (RMSNorm(v_j) . w), and the weighted sum of the sources.</summary>
    internal static (Tensor Value, Tensor Weights) AttendWithTensorOps(Tensor query, RMSNorm keyNorm, List<Tensor> sources)
    {
        var v = stack(sources, -2);                                             // [..., k, d]
        var weights = softmax(keyNorm.call(v).matmul(query), -1);               // [..., k]
        return ((weights.unsqueeze(-1) * v).sum(-2), weights);
    }
}
