using ResidualLab.Connections;
using TorchSharp;
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
/// </summary>
internal sealed class CausalSelfAttention : nn.Module<Tensor, LayerContext, Tensor>, IResidualSublayer
{
    readonly Linear c_attn;
    readonly Linear c_proj;
    readonly Dropout resid_dropout;
    readonly Parameter? value_lambda;
    readonly int nHead;
    readonly double attnDropout;

    /// <param name="init">How c_attn and c_proj start; <paramref name="block"/> and <paramref name="sublayers"/> place the layer in the model.</param>
    /// <param name="mixFirstValues">Value residual: mix this layer's values with the first attention layer's.</param>
    public CausalSelfAttention(int dModel, int nHead, double dropout, bool bias, ModelInit init, int block, int sublayers, bool mixFirstValues = false)
        : base(nameof(CausalSelfAttention))
    {
        if (dModel % nHead != 0) throw new ArgumentException($"d_model {dModel} is not divisible by n_head {nHead}");
        this.nHead = nHead;
        attnDropout = dropout;
        c_attn = nn.Linear(dModel, 3 * dModel, hasBias: bias);
        c_proj = nn.Linear(dModel, dModel, hasBias: bias);
        resid_dropout = nn.Dropout(dropout);
        if (mixFirstValues) value_lambda = nn.Parameter(full(1, 0.5));
        RegisterComponents();
        Init.Matrix(c_attn, init, block, sublayers, intoStream: false, fused: 3);
        Init.Matrix(c_proj, init, block, sublayers, intoStream: true);
    }

    /// <summary>Runs in the dtype of its weights (bf16 training) and returns its output in <paramref name="x"/>'s dtype.</summary>
    public override Tensor forward(Tensor x, LayerContext ctx)
    {
        long b = x.shape[0], t = x.shape[1], d = x.shape[2], hs = d / nHead;
        var qkv = c_attn.call(x.to(c_attn.weight!.dtype)).split(d, dim: 2);
        var q = qkv[0].view(b, t, nHead, hs).transpose(1, 2); // (b, nh, t, hs)
        var k = qkv[1].view(b, t, nHead, hs).transpose(1, 2);
        var v = qkv[2].view(b, t, nHead, hs).transpose(1, 2);
        if (ctx.FirstValues is null) ctx.FirstValues = v;
        else if (value_lambda is not null) v = value_lambda * v + (1 - value_lambda) * ctx.FirstValues;
        var y = F.scaled_dot_product_attention(q, k, v, p: training ? attnDropout : 0.0, is_casual: true);
        y = y.transpose(1, 2).contiguous().view(b, t, d);      // re-assemble heads side by side
        return resid_dropout.call(c_proj.call(y)).to(x.dtype);
    }

    public void ScaleResidualWeights(double gain)
    {
        using var _ = no_grad();
        long d = c_proj.weight!.shape[0];
        c_attn.weight![TensorIndex.Slice(2 * d, 3 * d)].mul_(gain); // value rows only
        c_proj.weight!.mul_(gain);
    }
}
