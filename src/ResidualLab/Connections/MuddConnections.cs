using ResidualLab.Layers;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace ResidualLab.Connections;

// Axes: b batch, t position, d width (the last axis); c the ways (query, key, value, residual); j the layers mixed.

/// <summary>
/// MUDD connections (multiway dynamic dense): the inputs of layer i are four separate per-token weighted sums of
/// the embedding and every earlier layer's output X_0..X_i, one each for the attention's query, key and value and
/// for the residual stream,
///   X_i^c = sum_j A_i[c, j] X_j,  A_i = GELU(RMSNorm(X_i) W_1) W_2 + a_i  (per token),
///   X_{i+1} = X_i^R + Attn(LN_Q(X^Q), LN_K(X^K), LN_V(X^V)) + ..., the rest of the layer pre-norm,
/// and the model's output is one more such sum (the residual way alone) over X_0..X_L.
/// Xiao et al. 2025, "MUDDFormer: Breaking Residual Bottlenecks in Transformers via Multiway Dynamic Dense
/// Connections" (arXiv 2502.12170), eq. 4-7; initialisation and sizes from the authors' training code: W_1
/// normal with std 1/sqrt(d), W_2 = 0, a_i = (0, ..., 0, 1) for every way (so at init every input is X_i: the
/// pre-norm model exactly), the RMSNorm without a learned scale, the hidden width C (i + 1) rounded up past a
/// multiple of 64, four times that for the output's sum.
/// Choices: a layer is a block of the model (<see cref="ConnectionSite.SublayersPerLayer"/>); the sums are formed
/// at the layer's first sublayer, which gets the query, key and value when the model marks it as an attention
/// (<see cref="ConnectionSite.TakesAttentionInputs"/>), else only the residual way (one sum, read through LN);
/// the first layer reads the embedding in every way; the three attention inputs get their own LayerNorm (the
/// code's "sepln"). The MLP's feed-forward width does not grow with depth here (the paper's MUDDFormer does).
/// Not for the vision models: they have no attention, so three of the four ways would have nothing to feed.
/// On the CIFAR ResNet: does not apply: the vision models lack what it needs (see models).
/// </summary>
public sealed record MuddScheme : ConnectionScheme
{
    /// <inheritdoc/>
    public override string Name => "mudd";

    /// <inheritdoc/>
    public override ModelNeeds Needs => ModelNeeds.AttentionInputs;

    /// <inheritdoc/>
    public override Connection Build(ConnectionSite site) => new MuddConnection(site);

    /// <summary>
    /// At a layer's first sublayer i > 0 with n = i + 1 layers mixed and C ways: RMSNorm (3 d), W_1 and W_2, GELU
    /// (one per hidden unit), the static add (C n) and C weighted sums of n vectors; C LayerNorms (7 d each) and the
    /// residual add. Elsewhere in the layer: pre-norm. The last sublayer adds the output's sum (C = 1, four times the
    /// hidden width).
    /// </summary>
    internal override double ForwardFlops(ConnectionSite site)
    {
        int d = site.Width, layer = site.Layer;
        bool first = site.SublayerIndex % site.SublayersPerLayer == 0;
        int ways = site.TakesAttentionInputs ? 3 : 1;
        double flops = first ? ways * ConnectionFlops.LayerNorm(d) + d : ConnectionFlops.LayerNorm(d) + d;
        if (first && layer > 0) flops += DenseMix.Flops(d, site.TakesAttentionInputs ? 4 : 1, layer + 1, 1);
        if (site.SublayerIndex == site.SublayerCount - 1) flops += DenseMix.Flops(d, 1, site.LayerCount + 1, 4);
        return flops;
    }

    /// <inheritdoc/>
    public override IReadOnlyDictionary<string, object> Options => new Dictionary<string, object>();
}

internal sealed class MuddConnection : Connection
{
    readonly nn.Module<Tensor, Tensor> norm;          // the residual way's (or a later sublayer's) pre-norm
    readonly nn.Module<Tensor, Tensor>? key_norm;     // attention sites: LN_K, LN_V (norm is LN_Q)
    readonly nn.Module<Tensor, Tensor>? value_norm;
    readonly DenseMix? mix;                           // the layer's inputs, from X_0..X_i
    readonly DenseMix? output_mix;                    // the model's output, from X_0..X_L
    readonly int index, layer, perLayer;
    readonly bool first;

    public MuddConnection(ConnectionSite site) : base(nameof(MuddConnection))
    {
        index = site.SublayerIndex;
        layer = site.Layer;
        perLayer = site.SublayersPerLayer;
        first = index % perLayer == 0;
        norm = site.MakeNorm();
        if (first && site.TakesAttentionInputs)
        {
            key_norm = site.MakeNorm();
            value_norm = site.MakeNorm();
        }
        if (first && layer > 0) mix = new DenseMix(site.Width, site.TakesAttentionInputs ? 4 : 1, layer + 1, 1);
        if (index == site.SublayerCount - 1) output_mix = new DenseMix(site.Width, 1, site.LayerCount + 1, 4);
        RegisterComponents();
    }

    /// <summary>The layer's mixing weights of the last width step, [b, t, C, i + 1]; null before the second layer.</summary>
    public Tensor? LastWeights => mix?.LastWeights;

    /// <summary>The embedding and every earlier layer's output: the stream at each layer boundary, and <paramref name="last"/>.</summary>
    List<Tensor> LayerOutputs(IReadOnlyList<Tensor> history, Tensor? last = null)
    {
        var outputs = Enumerable.Range(0, history.Count).Where(k => k % perLayer == 0).Select(k => history[k]).ToList();
        if (last is not null) outputs.Add(last);
        return outputs;
    }

    public override Branch Prepare(Tensor stream, LayerContext ctx)
    {
        if (!first) return new(norm.call(stream), stream);
        if (ctx.History.Count != index + 1)
            throw new InvalidOperationException(
                $"MUDD at sublayer {index} needs the embedding and every earlier sublayer's result in LayerContext.History; found {ctx.History.Count} entries");
        var ways = mix is null ? [stream, stream, stream, stream] : mix.Mix(LayerOutputs(ctx.History));
        var residual = ways[^1];
        if (key_norm is null) return new(norm.call(residual), residual);
        var query = norm.call(ways[0]);
        return new(query, residual, Attention: new AttentionInputs(query, key_norm.call(ways[1]), value_norm!.call(ways[2])));
    }

    public override Tensor Combine(Tensor output, Branch branch, LayerContext ctx)
    {
        var x = branch.Stream + output;
        return output_mix is null ? x : output_mix.Mix(LayerOutputs(ctx.History, x))[0];
    }
}

/// <summary>
/// One MUDD dense connection: from the newest layer output X_i, per token, C ways of weights over the n layer
/// outputs, A = GELU(RMSNorm(X_i) W_1) W_2 + a (a = the last output in every way at init), and each way's sum.
/// </summary>
internal sealed class DenseMix : nn.Module
{
    readonly Linear w1;
    readonly Linear w2;
    readonly Parameter bias;   // a [C, n]
    readonly int ways, count;

    public DenseMix(int width, int ways, int count, int hiddenExpand) : base(nameof(DenseMix))
    {
        this.ways = ways;
        this.count = count;
        int hidden = HiddenWidth(ways, count, hiddenExpand);
        w1 = nn.Linear(width, hidden, hasBias: false);
        w2 = nn.Linear(hidden, ways * count, hasBias: false);
        var a = zeros(ways, count);
        a.select(1, count - 1).fill_(1);
        bias = nn.Parameter(a);
        RegisterComponents();
        using var _ = no_grad();
        nn.init.normal_(w1.weight!, 0, 1 / Math.Sqrt(width));
        nn.init.zeros_(w2.weight!);
    }

    /// <summary>C n times the expansion, rounded up past a multiple of 64 (the authors' code).</summary>
    static int HiddenWidth(int ways, int count, int expand) => ways * count * expand / 64 * 64 + 64;

    /// <summary>Forward FLOPs per token (see <see cref="ConnectionFlops"/>).</summary>
    public static double Flops(int d, int ways, int count, int expand)
    {
        int hidden = HiddenWidth(ways, count, expand);
        return 3.0 * d + ConnectionFlops.MatVec(d, hidden) + hidden + ConnectionFlops.MatVec(hidden, ways * count)
            + ways * count + ways * ConnectionFlops.WeightedSum(count, d);
    }

    /// <summary>The weights of the last call, [..., C, n].</summary>
    public Tensor? LastWeights { get; private set; }

    /// <summary>The C weighted sums of <paramref name="outputs"/> (X_0..X_i, each [..., d]), weighted per token from X_i.</summary>
    public Tensor[] Mix(IReadOnlyList<Tensor> outputs)
    {
        if (outputs.Count != count)
            throw new InvalidOperationException($"a MUDD connection over {count} layer outputs got {outputs.Count}");
        var newest = outputs[^1];
        var inner = nn.functional.gelu(w1.call(newest * RMSNorm.InverseRms(newest)));
        var flat = w2.call(inner);                                          // [..., C n]
        var weights = flat.view([.. flat.shape[..^1], ways, count]) + bias; // [..., C, n]
        LastWeights = weights;
        var sums = new Tensor[ways];
        for (int c = 0; c < ways; c++)
        {
            var w = weights.select(-2, c);                                   // [..., n]
            var sum = w.narrow(-1, 0, 1) * outputs[0];
            for (int j = 1; j < count; j++) sum = sum + w.narrow(-1, j, 1) * outputs[j];
            sums[c] = sum;
        }
        return sums;
    }
}
