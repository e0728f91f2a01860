using ResidualLab.Connections;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace ResidualLab.Layers;

/// <summary>
/// Multi-head causal self-attention, as in nanoGPT: one fused q/k/v projection (c_attn), the
/// attention kernel, an output projection (c_proj) back into the residual stream.
/// With the value residual, V_l = lambda V_l + (1 - lambda) V_1: the first attention layer's values V_1
/// (kept in <see cref="LayerContext.FirstValues"/>) mixed in with a learnable scalar lambda = 0.5 at init.
/// Zhou et al. 2024, "Value Residual Learning For Alleviating Attention Concentration In Transformers"
/// (ResFormer, arXiv 2410.17897).
/// Schemes that feed the query, key and value from different inputs (<see cref="ModelNeeds.AttentionInputs"/>) call
/// <see cref="Forward"/> with three inputs; the three slices of c_attn then project them apart. With unit-norm
/// weights (<see cref="ModelNeeds.UnitNormWeights"/>, nGPT), each head's query and key are normalised and scaled by
/// s_qk [d] (stored at 1/sqrt(d), init 1) and the softmax scale is sqrt(d_head) instead of 1/sqrt(d_head).
/// </summary>
internal sealed class CausalSelfAttention : nn.Module<Tensor, LayerContext, Tensor>, IResidualSublayer
{
    readonly Linear c_attn;
    readonly Linear c_proj;
    readonly Dropout resid_dropout;
    readonly Parameter? value_lambda;
    readonly Parameter? qk_scale;   // s_qk [d], unit-norm weights only
    readonly int nHead;
    readonly double attnDropout;

    /// <param name="init">How c_attn and c_proj start; <paramref name="block"/> and <paramref name="sublayers"/> place the layer in the model.</param>
    /// <param name="mixFirstValues">Value residual: mix this layer's values with the first attention layer's.</param>
    /// <param name="unitNorm">Normalised query and key with a learned scale, softmax scale sqrt(d_head) (nGPT).</param>
    public CausalSelfAttention(int dModel, int nHead, double dropout, bool bias, ModelInit init, int block, int sublayers,
        bool mixFirstValues = false, bool unitNorm = false)
        : base(nameof(CausalSelfAttention))
    {
        if (dModel % nHead != 0) throw new ArgumentException($"d_model {dModel} is not divisible by n_head {nHead}");
        this.nHead = nHead;
        attnDropout = dropout;
        c_attn = nn.Linear(dModel, 3 * dModel, hasBias: bias);
        c_proj = nn.Linear(dModel, dModel, hasBias: bias);
        resid_dropout = nn.Dropout(dropout);
        if (mixFirstValues) value_lambda = nn.Parameter(full(1, 0.5));
        if (unitNorm) qk_scale = nn.Parameter(full(dModel, 1 / Math.Sqrt(dModel)));
        RegisterComponents();
        Init.Matrix(c_attn, init, block, sublayers, intoStream: false, fused: 3);
        Init.Matrix(c_proj, init, block, sublayers, intoStream: true);
    }

    /// <summary>Runs in the dtype of its weights (bf16 training) and returns its output in <paramref name="x"/>'s dtype.</summary>
    public override Tensor forward(Tensor x, LayerContext ctx) => Forward(x, x, x, ctx);

    /// <summary>Attention with the query read from <paramref name="query"/>, the key from <paramref name="key"/> and the
    /// value from <paramref name="value"/> (each [b, t, d]); the same tensor thrice is the ordinary self-attention.</summary>
    public Tensor Forward(Tensor query, Tensor key, Tensor value, LayerContext ctx)
    {
        long b = query.shape[0], t = query.shape[1], d = query.shape[2], hs = d / nHead;
        var dtype = c_attn.weight!.dtype;
        Tensor[] qkv = ReferenceEquals(query, key) && ReferenceEquals(key, value)
            ? c_attn.call(query.to(dtype)).split(d, dim: 2)
            : [Project(query, 0, d), Project(key, 1, d), Project(value, 2, d)];
        var q = qkv[0].view(b, t, nHead, hs).transpose(1, 2); // (b, nh, t, hs)
        var k = qkv[1].view(b, t, nHead, hs).transpose(1, 2);
        var v = qkv[2].view(b, t, nHead, hs).transpose(1, 2);
        if (ctx.FirstValues is null) ctx.FirstValues = v;
        else if (value_lambda is not null) v = value_lambda * v + (1 - value_lambda) * ctx.FirstValues;
        if (qk_scale is not null)
        {
            // s_qk Norm(q) and s_qk Norm(k); the softmax's 1/sqrt(hs) times hs on q makes its scale sqrt(hs).
            var scale = (qk_scale * Math.Sqrt(d)).view(nHead, 1, hs);
            q = NGptScheme.Unit(q) * scale * hs;
            k = NGptScheme.Unit(k) * scale;
        }
        var y = F.scaled_dot_product_attention(q, k, v, p: training ? attnDropout : 0.0, is_casual: true);
        y = y.transpose(1, 2).contiguous().view(b, t, d);      // re-assemble heads side by side
        return resid_dropout.call(c_proj.call(y)).to(query.dtype);
    }

    /// <summary>Slice <paramref name="part"/> (0 query, 1 key, 2 value) of c_attn applied to <paramref name="x"/>.</summary>
    Tensor Project(Tensor x, int part, long d) =>
        F.linear(x.to(c_attn.weight!.dtype), c_attn.weight!.narrow(0, part * d, d), c_attn.bias?.narrow(0, part * d, d));

    /// <summary>The matrices kept at unit norm with unit-norm weights, with the axis normalised: c_attn's rows read
    /// from the stream (axis 1), c_proj's columns write into it (axis 0).</summary>
    public IEnumerable<(Tensor Weight, int Axis)> UnitNormMatrices() => [(c_attn.weight!, 1), (c_proj.weight!, 0)];

    public void ScaleResidualWeights(double gain)
    {
        using var _ = no_grad();
        long d = c_proj.weight!.shape[0];
        c_attn.weight![TensorIndex.Slice(2 * d, 3 * d)].mul_(gain); // value rows only
        c_proj.weight!.mul_(gain);
    }
}
