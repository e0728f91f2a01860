using ResidualLab.Connections;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace ResidualLab.Layers;

// Axes: b batch, nh heads, t query positions, s key positions, hs head width, d = nh hs model width.

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
/// A scheme that shapes the attention (<see cref="ModelNeeds.AttentionShape"/>) gives an <see cref="AttentionShape"/>: the
/// matrix applied to head h's values is alpha I + beta D ⊙_rows softmax(q k^T / sqrt(hs) + B + M) - gamma C, computed as
/// alpha V + beta D ⊙ SDPA(q, k, V; mask B + M) - gamma cummean_t(V) so the fused kernel stays (C V is the running mean of V
/// over positions); B = log P and D = rowsum(P) are fixed buffers built once from the shape's prior P at the block size and
/// sliced; the value and output projections may be orthogonal at init, removed (the identity: c_attn then projects q and k
/// only), or the identity plus a learned matrix that starts at zero.
/// </summary>
internal sealed class CausalSelfAttention : nn.Module<Tensor, LayerContext, Tensor>, IResidualSublayer
{
    readonly Linear c_attn;            // d -> 3d (q, k, v), or 2d (q, k) when the value is the identity
    readonly Linear? c_proj;           // null: the output projection is the identity
    readonly Dropout resid_dropout;
    readonly Parameter? value_lambda;
    readonly Parameter? qk_scale;      // s_qk [d], unit-norm weights only
    readonly Parameter? attn_identity; // alpha [g], g = 1 or nh (trainable shape gains)
    readonly Parameter? attn_softmax;  // beta [g]
    readonly Parameter? attn_centre;   // gamma [g]
    readonly Parameter? value_identity; // a_V [1]: value = a_V x + b_V (x ΔW^T + b)
    readonly Parameter? value_learned;  // b_V [1]
    readonly Tensor? prior_bias;       // B [T, T], -inf above the diagonal
    readonly Tensor? prior_scale;      // D [T, 1]
    readonly AttentionShape shape;
    readonly int nHead;
    readonly double attnDropout;

    /// <param name="init">How c_attn and c_proj start; <paramref name="block"/> and <paramref name="sublayers"/> place the layer in the model.</param>
    /// <param name="mixFirstValues">Value residual: mix this layer's values with the first attention layer's.</param>
    /// <param name="unitNorm">Normalised query and key with a learned scale, softmax scale sqrt(d_head) (nGPT).</param>
    /// <param name="shape">The scheme's shape of the attention; null: <see cref="AttentionShape.Standard"/>.</param>
    /// <param name="blockSize">The longest sequence: the prior's buffers are built at this length.</param>
    public CausalSelfAttention(int dModel, int nHead, double dropout, bool bias, ModelInit init, int block, int sublayers,
        bool mixFirstValues = false, bool unitNorm = false, AttentionShape? shape = null, int blockSize = 0)
        : base(nameof(CausalSelfAttention))
    {
        if (dModel % nHead != 0) throw new ArgumentException($"d_model {dModel} is not divisible by n_head {nHead}");
        this.shape = shape ??= AttentionShape.Standard;
        this.nHead = nHead;
        attnDropout = dropout;
        int parts = shape.Value == ProjectionShape.Identity ? 2 : 3;
        c_attn = nn.Linear(dModel, parts * dModel, hasBias: bias);
        if (shape.Output != ProjectionShape.Identity) c_proj = nn.Linear(dModel, dModel, hasBias: bias);
        resid_dropout = nn.Dropout(dropout);
        if (mixFirstValues) value_lambda = nn.Parameter(full(1, 0.5));
        if (unitNorm) qk_scale = nn.Parameter(full(dModel, 1 / Math.Sqrt(dModel)));
        if (shape.Gains != ShapeGains.Fixed)
        {
            int g = shape.Gains == ShapeGains.PerHead ? nHead : 1;
            if (shape.Identity != 0) attn_identity = nn.Parameter(full(g, shape.Identity));
            attn_softmax = nn.Parameter(full(g, shape.Softmax));
            if (shape.Centre != 0) attn_centre = nn.Parameter(full(g, shape.Centre));
        }
        if (shape.Value == ProjectionShape.IdentityPlusLearned)
        {
            value_identity = nn.Parameter(ones(1));
            value_learned = nn.Parameter(ones(1));
        }
        if (shape.Prior is { } prior)
        {
            if (blockSize < 1) throw new ArgumentException("an attention with a prior needs the block size to build it at", nameof(blockSize));
            using var scope = NewDisposeScope();
            prior_scale = prior.Matrix(blockSize).sum(1, keepdim: true).to(ScalarType.Float32).MoveToOuterDisposeScope(); // D = rowsum(P), [T, 1]
            prior_bias = prior.Log(blockSize).to(ScalarType.Float32).MoveToOuterDisposeScope();                        // B = log P, -inf above the diagonal
        }
        RegisterComponents();

        Init.Matrix(c_attn, init, block, sublayers, intoStream: false, fused: parts);
        if (shape.ZeroQuery) Init.Zero(c_attn, part: 0, parts);
        if (shape.KeyStd is double std) Init.Normal(c_attn, part: 1, parts, std);
        if (shape.Value == ProjectionShape.Orthogonal) Init.Orthogonal(c_attn, part: 2, parts);
        if (shape.Value == ProjectionShape.IdentityPlusLearned) Init.Zero(c_attn, part: 2, parts);
        if (c_proj is not null)
        {
            if (shape.Output == ProjectionShape.Orthogonal) Init.Orthogonal(c_proj, part: 0, parts: 1);
            else Init.Matrix(c_proj, init, block, sublayers, intoStream: true);
        }
    }

    /// <summary>Runs in the dtype of its weights (bf16 training) and returns its output in <paramref name="x"/>'s dtype.</summary>
    public override Tensor forward(Tensor x, LayerContext ctx) => Forward(x, x, x, ctx);

    /// <summary>Attention with the query read from <paramref name="query"/>, the key from <paramref name="key"/> and the
    /// value from <paramref name="value"/> (each [b, t, d]); the same tensor thrice is the ordinary self-attention.</summary>
    public Tensor Forward(Tensor query, Tensor key, Tensor value, LayerContext ctx)
    {
        long b = query.shape[0], t = query.shape[1], d = query.shape[2], hs = d / nHead;
        var (q, k, v) = Project(query, key, value);
        if (ctx.FirstValues is null) ctx.FirstValues = v;
        else if (value_lambda is not null) v = value_lambda * v + (1 - value_lambda) * ctx.FirstValues;
        Tensor y;
        if (prior_bias is not null)
            y = F.scaled_dot_product_attention(q, k, v, PriorBias(t, q.dtype), p: training ? attnDropout : 0.0) * prior_scale!.narrow(0, 0, t).to(q.dtype);
        else
            y = F.scaled_dot_product_attention(q, k, v, p: training ? attnDropout : 0.0, is_casual: true);
        if (!shape.IsStandard) y = Shaped(y, v, t);
        y = y.transpose(1, 2).contiguous().view(b, t, d);      // re-assemble heads side by side
        if (c_proj is not null) y = c_proj.call(y);
        return resid_dropout.call(y).to(query.dtype);
    }

    /// <summary>beta y + alpha v - gamma C v on [b, nh, t, hs]: the shaped attention from the (rescaled) softmax attention's output y.</summary>
    Tensor Shaped(Tensor y, Tensor v, long t)
    {
        var result = y * Gain(attn_softmax, shape.Softmax, y);
        if (shape.Identity != 0) result = result + v * Gain(attn_identity, shape.Identity, v);
        if (shape.Centre != 0)
        {
            var counts = arange(1, t + 1, dtype: v.dtype, device: v.device).view(1, 1, t, 1);
            result = result - v.cumsum(2) / counts * Gain(attn_centre, shape.Centre, v);   // C v: the running mean over positions
        }
        return result;
    }

    /// <summary>A shape gain broadcast over [b, nh, t, hs]: its parameter ([1] or [nh]), or the fixed value.</summary>
    static Tensor Gain(Parameter? gain, double fixedValue, Tensor like) => gain is null
        ? tensor(fixedValue, dtype: like.dtype, device: like.device)
        : gain.to(like.dtype).view(1, -1, 1, 1);

    /// <summary>B + M for the first <paramref name="t"/> positions, [t, t].</summary>
    Tensor PriorBias(long t, ScalarType dtype) => prior_bias!.narrow(0, 0, t).narrow(1, 0, t).to(dtype);

    /// <summary>q, k and v as heads, [b, nh, t, hs], in the weights' dtype (q scaled for nGPT).</summary>
    (Tensor Q, Tensor K, Tensor V) Project(Tensor query, Tensor key, Tensor value)
    {
        long b = query.shape[0], t = query.shape[1], d = query.shape[2], hs = d / nHead;
        var dtype = c_attn.weight!.dtype;
        bool self = ReferenceEquals(query, key) && ReferenceEquals(key, value);
        if (!self && shape.Value == ProjectionShape.Identity)
            throw new InvalidOperationException("an attention without a value projection reads one input for query, key and value");
        Tensor[] parts = self ? c_attn.call(query.to(dtype)).split(d, dim: 2) : [Part(query, 0, d), Part(key, 1, d), Part(value, 2, d)];
        var v = shape.Value switch
        {
            ProjectionShape.Identity => value.to(dtype),
            ProjectionShape.IdentityPlusLearned => value_identity!.to(dtype) * value.to(dtype) + value_learned!.to(dtype) * parts[2],
            _ => parts[2],
        };
        Tensor Heads(Tensor x) => x.view(b, t, nHead, hs).transpose(1, 2); // (b, nh, t, hs)
        var (q, k) = (Heads(parts[0]), Heads(parts[1]));
        if (qk_scale is not null)
        {
            // s_qk Norm(q) and s_qk Norm(k); the softmax's 1/sqrt(hs) times hs on q makes its scale sqrt(hs).
            var scale = (qk_scale * Math.Sqrt(d)).view(nHead, 1, hs);
            q = NGptScheme.Unit(q) * scale * hs;
            k = NGptScheme.Unit(k) * scale;
        }
        return (q, k, Heads(v));
    }

    /// <summary>
    /// The T x T matrix each head applies to its values for input <paramref name="x"/> [b, t, d], [b, nh, t, t]: the softmax
    /// attention (rescaled by the prior's D) and, for a shaped attention, alpha I + beta (that) - gamma C. The fused kernel never
    /// forms it; this diagnostic does, in the weights' dtype. Value residual and dropout are not part of it.
    /// </summary>
    public Tensor EffectiveAttention(Tensor x)
    {
        using var _ = no_grad();
        long t = x.shape[1], hs = x.shape[2] / nHead;
        var (q, k, _) = Project(x, x, x);
        var logits = q.matmul(k.transpose(-2, -1)) / Math.Sqrt(hs);
        var pattern = prior_bias is not null
            ? F.softmax(logits + PriorBias(t, q.dtype), -1) * prior_scale!.narrow(0, 0, t).to(q.dtype)
            : F.softmax(logits.masked_fill(ones(t, t, dtype: ScalarType.Bool, device: x.device).triu(1), double.NegativeInfinity), -1);
        if (shape.IsStandard) return pattern;
        var identity = eye(t, dtype: q.dtype, device: x.device);
        var uniform = ones(t, t, dtype: q.dtype, device: x.device).tril() / arange(1, t + 1, dtype: q.dtype, device: x.device).view(t, 1);
        var result = pattern * Gain(attn_softmax, shape.Softmax, pattern);
        if (shape.Identity != 0) result = result + identity * Gain(attn_identity, shape.Identity, pattern);
        if (shape.Centre != 0) result = result - uniform * Gain(attn_centre, shape.Centre, pattern);
        return result;
    }

    /// <summary>Slice <paramref name="part"/> (0 query, 1 key, 2 value) of c_attn applied to <paramref name="x"/>.</summary>
    Tensor Part(Tensor x, int part, long d) =>
        F.linear(x.to(c_attn.weight!.dtype), c_attn.weight!.narrow(0, part * d, d), c_attn.bias?.narrow(0, part * d, d));

    /// <summary>The matrices kept at unit norm with unit-norm weights, with the axis normalised: c_attn's rows read
    /// from the stream (axis 1), c_proj's columns write into it (axis 0).</summary>
    public IEnumerable<(Tensor Weight, int Axis)> UnitNormMatrices() =>
        c_proj is null ? [(c_attn.weight!, 1)] : [(c_attn.weight!, 1), (c_proj.weight!, 0)];

    public void ScaleResidualWeights(double gain)
    {
        using var _ = no_grad();
        long d = c_attn.weight!.shape[1];
        if (c_attn.weight.shape[0] == 3 * d) c_attn.weight![TensorIndex.Slice(2 * d, 3 * d)].mul_(gain); // value rows only
        c_proj?.weight!.mul_(gain);
    }
}
