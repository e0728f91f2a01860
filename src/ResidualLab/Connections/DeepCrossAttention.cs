using ResidualLab.Layers;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace ResidualLab.Connections;

// Axes: b batch, t position, d width (the last axis); o the outputs (query, key, value); j the layer outputs mixed.

/// <summary>
/// DeepCrossAttention (DCA): no running sum; layer i reads input-dependent mixtures of the embedding and every
/// earlier layer's output v_0..v_i, one each for the attention's query, key and value (three generalised residual
/// networks, GRN-v3):
///   x_i^o = sum_j (ReLU(RMSNorm(v_j) . w_o) + b_{o,j}) * v_j,  w_o [d] (0 at init), b_{o,j} [d] (1 at init),
///   v_{i+1} = a + f, a = Attn(LN(x^Q), LN(x^K), LN(x^V)), f = MLP(LN(x^Q + a)),
/// the query mixture also serving as the residual, and the model's output one more GRN over v_0..v_L.
/// Heddes et al. 2025, "DeepCrossAttention: Supercharging Transformer Residual Connections" (arXiv 2502.06785),
/// sec. 3; GRN-v3's form (a per-token scalar from the output itself plus a per-dimension bias) as in the public
/// implementation lucidrains/deep-cross-attention. At init every mixture is the plain sum of the outputs, which is
/// the pre-norm residual stream: DCA starts as the pre-norm model exactly.
/// Choices: a layer is a block of the model (<see cref="ConnectionSite.SublayersPerLayer"/>); the mixtures are formed
/// at the layer's first sublayer, which gets the query, key and value when the model marks it as an attention
/// (<see cref="ConnectionSite.TakesAttentionInputs"/>), else only the query/residual mixture; every earlier output is
/// mixed (the paper's k-DCA, which keeps only the first and last k for speed, is not built); the RMSNorm inside the
/// GRN has a learned scale; each attention input gets its own LayerNorm.
/// Representation: as for Attention Residuals, the "stream" a layer's last depth step returns is the layer's output
/// v_{i+1}, so the stream at each layer boundary of <see cref="LayerContext.History"/> is exactly the list of
/// outputs; the last depth step returns the model's output mixture instead.
/// Not for the vision models: they have no attention, so the query, key and value mixtures would have nothing to feed.
/// On the CIFAR ResNet: does not apply: the vision models lack what it needs (see models).
/// </summary>
public sealed record DeepCrossAttentionScheme : ConnectionScheme
{
    /// <inheritdoc/>
    public override string Name => "dca";

    /// <inheritdoc/>
    public override ModelNeeds Needs => ModelNeeds.AttentionInputs;

    /// <inheritdoc/>
    public override Connection Build(ConnectionSite site) => new DeepCrossAttention(site);

    /// <summary>
    /// At a layer's first sublayer, the GRN over i + 1 outputs with 3 (attention) or 1 outputs, one LayerNorm per
    /// output and the residual add; later sublayers of the layer a pre-norm and two adds (the stream and the layer's
    /// output); the last sublayer adds the output GRN over L + 1 outputs.
    /// </summary>
    internal override double ForwardFlops(ConnectionSite site)
    {
        int d = site.Width;
        bool first = site.SublayerIndex % site.SublayersPerLayer == 0;
        int outputs = site.TakesAttentionInputs ? 3 : 1;
        double flops = first
            ? DepthMix.Flops(d, outputs, site.Layer + 1) + outputs * ConnectionFlops.LayerNorm(d) + d
            : ConnectionFlops.LayerNorm(d) + 2.0 * d;
        if (site.SublayerIndex == site.SublayerCount - 1) flops += DepthMix.Flops(d, 1, site.LayerCount + 1);
        return flops;
    }

    /// <inheritdoc/>
    public override IReadOnlyDictionary<string, object> Options => new Dictionary<string, object>();
}

internal sealed class DeepCrossAttention : Connection
{
    /// <summary>The key under which a layer's sublayers sum their outputs in <see cref="LayerContext.PassState"/>.</summary>
    const string LayerOutputKey = "dca.layer_output";

    readonly nn.Module<Tensor, Tensor> norm;          // the query's (or a later sublayer's) pre-norm
    readonly nn.Module<Tensor, Tensor>? key_norm;     // attention sites: LN_K, LN_V
    readonly nn.Module<Tensor, Tensor>? value_norm;
    readonly DepthMix? mix;                           // the layer's inputs, from v_0..v_i
    readonly DepthMix? output_mix;                    // the model's output, from v_0..v_L
    readonly int index, perLayer;
    readonly bool first, lastOfLayer;

    public DeepCrossAttention(ConnectionSite site) : base(nameof(DeepCrossAttention))
    {
        index = site.SublayerIndex;
        perLayer = site.SublayersPerLayer;
        first = index % perLayer == 0;
        lastOfLayer = index % perLayer == perLayer - 1;
        norm = site.MakeNorm();
        if (first)
        {
            if (site.TakesAttentionInputs)
            {
                key_norm = site.MakeNorm();
                value_norm = site.MakeNorm();
            }
            mix = new DepthMix(site.Width, site.TakesAttentionInputs ? 3 : 1, site.Layer + 1);
        }
        if (index == site.SublayerCount - 1) output_mix = new DepthMix(site.Width, 1, site.LayerCount + 1);
        RegisterComponents();
    }

    /// <summary>The layer's mixing weights of the last width step, per layer output j [b, t, o, d]; null at later sublayers of a layer.</summary>
    public IReadOnlyList<Tensor>? LastWeights => mix?.LastWeights;

    /// <summary>The embedding and every earlier layer's output (the stream at each layer boundary), and <paramref name="last"/>.</summary>
    List<Tensor> LayerOutputs(IReadOnlyList<Tensor> history, Tensor? last = null)
    {
        var outputs = Enumerable.Range(0, history.Count).Where(k => k % perLayer == 0).Select(k => history[k]).ToList();
        if (last is not null) outputs.Add(last);
        return outputs;
    }

    public override Branch Prepare(Tensor stream, LayerContext ctx)
    {
        if (mix is null) return new(norm.call(stream), stream);
        if (ctx.History.Count != index + 1)
            throw new InvalidOperationException(
                $"DCA at sublayer {index} needs the embedding and every earlier sublayer's result in LayerContext.History; found {ctx.History.Count} entries");
        var mixtures = mix.Mix(LayerOutputs(ctx.History));
        var query = norm.call(mixtures[0]);
        return key_norm is null
            ? new(query, mixtures[0])
            : new(query, mixtures[0], Attention: new AttentionInputs(query, key_norm.call(mixtures[1]), value_norm!.call(mixtures[2])));
    }

    public override Tensor Combine(Tensor output, Branch branch, LayerContext ctx)
    {
        var layerOutput = first ? output : ctx.PassState[LayerOutputKey] + output;
        if (!lastOfLayer)
        {
            ctx.PassState[LayerOutputKey] = layerOutput;
            return branch.Stream + output;
        }
        return output_mix is null ? layerOutput : output_mix.Mix(LayerOutputs(ctx.History, layerOutput))[0];
    }
}

/// <summary>
/// GRN-v3: o mixtures of n layer outputs, each output weighted per token by ReLU(RMSNorm(v_j) . w_o) plus a
/// per-dimension bias b_{o,j}: w = 0 and b = 1 at init, the plain sum.
/// </summary>
internal sealed class DepthMix : nn.Module
{
    readonly RMSNorm key_norm;
    readonly Linear gate;      // w [o, d]
    readonly Parameter bias;   // b [o, n, d]
    readonly int outputs, count;

    public DepthMix(int width, int outputs, int count) : base(nameof(DepthMix))
    {
        this.outputs = outputs;
        this.count = count;
        key_norm = new RMSNorm(width);
        gate = nn.Linear(width, outputs, hasBias: false);
        bias = nn.Parameter(ones(outputs, count, width));
        RegisterComponents();
        using var _ = no_grad();
        nn.init.zeros_(gate.weight!);
    }

    /// <summary>Forward FLOPs per token: per output its RMSNorm and gate (4 d + 2 o d + o), the bias (o d) and the o weighted sums.</summary>
    public static double Flops(int d, int outputs, int count) =>
        count * (ConnectionFlops.RmsNorm(d) + ConnectionFlops.MatVec(d, outputs) + outputs + (double)outputs * d)
        + outputs * ConnectionFlops.WeightedSum(count, d);

    /// <summary>The weights of the last call, per layer output j [..., o, d] (kept as computed, not copied).</summary>
    public IReadOnlyList<Tensor>? LastWeights { get; private set; }

    /// <summary>The o mixtures of <paramref name="values"/> (v_0..v_i, each [..., d]).</summary>
    public Tensor[] Mix(IReadOnlyList<Tensor> values)
    {
        if (values.Count != count)
            throw new InvalidOperationException($"a DCA mixture over {count} layer outputs got {values.Count}");
        var weights = new List<Tensor>();                                        // per output j: [..., o, d]
        var mixtures = new Tensor[outputs];
        for (int j = 0; j < count; j++)
        {
            var scalars = nn.functional.relu(gate.call(key_norm.call(values[j]))).unsqueeze(-1); // [..., o, 1]
            var w = scalars + bias.select(1, j);                                  // [..., o, d]
            weights.Add(w);
            for (int o = 0; o < outputs; o++)
            {
                var term = w.select(-2, o) * values[j];
                mixtures[o] = j == 0 ? term : mixtures[o] + term;
            }
        }
        LastWeights = weights;
        return mixtures;
    }
}
