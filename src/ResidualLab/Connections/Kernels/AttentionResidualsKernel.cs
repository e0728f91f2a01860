using System.Numerics;
using System.Runtime.CompilerServices;
using static TorchSharp.torch;

namespace ResidualLab.Connections.Kernels;

// Axes: t tokens (all leading axes flattened), k the sources attended over, d width.

/// <summary>
/// Attention Residuals' attention over depth on CPU float32/float64 tensors as one autograd function: per token,
/// logit_j = (v_j r_j gamma) . w with r_j = 1 / rms(v_j), a = softmax(logits), h = sum_j a_j v_j, for k sources v_j
/// [t, d] handed over one by one (no stacked [t, k, d] copy, no normalised copy). The same function as
/// <see cref="AttentionResiduals"/>' tensor operations. Each token's k rows are read once forward (their sums of squares,
/// their products with u = gamma w, the weighted sum) and once backward. It keeps r and v . u [t, k] for the backward.
/// Backward per token, with p_j = v_j . u: da_j = v_j . g (+ the weights' own gradient), dlogit = a (da - a . da),
/// dv_j = a_j g + dlogit_j r_j u - dlogit_j p_j r_j^3 / d v_j, du = sum over tokens and sources of dlogit_j r_j v_j,
/// dw = gamma du, dgamma = w du.
/// </summary>
internal sealed class AttentionResidualsKernel : autograd.MultiTensorFunction<AttentionResidualsKernel>
{
    public override string Name => nameof(AttentionResidualsKernel);

    public static bool Applies(IReadOnlyList<Tensor> sources, Tensor query) => CpuLoops.Takes([.. sources, query]);

    /// <summary>The attended value [..., d] and the weights [..., k] over <paramref name="sources"/> (each [..., d]).</summary>
    /// <param name="query">w [d].</param>
    /// <param name="keyWeight">gamma [d], the key RMSNorm's scale.</param>
    public static (Tensor Value, Tensor Weights) Run(IReadOnlyList<Tensor> sources, Tensor query, Tensor keyWeight, double eps)
    {
        var dtype = sources[0].dtype;
        var outputs = apply([.. sources.Select(s => (object)s), query.to(dtype), keyWeight.to(dtype), eps]);
        return (outputs[0], outputs[1]);
    }

    public override List<Tensor> forward(autograd.AutogradContext ctx, params object[] vars)
    {
        int k = vars.Length - 3;
        var sources = vars.Take(k).Select(v => ((Tensor)v).contiguous()).ToArray();
        var query = ((Tensor)vars[k]).contiguous();
        var keyWeight = ((Tensor)vars[k + 1]).contiguous();
        double eps = (double)vars[k + 2];
        var shape = sources[0].shape;
        if (sources.Any(s => !s.shape.SequenceEqual(shape)))
            throw new ArgumentException("Attention Residuals' sources must all have one shape");
        long d = shape[^1], tokens = sources[0].numel() / d;
        var value = empty(shape, sources[0].dtype);
        var weights = empty([.. shape[..^1], k], sources[0].dtype);
        var statistics = empty(tokens, 2, k, dtype: sources[0].dtype); // r, then v . u
        CpuLoops.Dispatch(value.dtype, new Forward(sources, query, keyWeight, eps, value, weights, statistics));
        ctx.save_for_backward([.. sources, query, keyWeight, weights, statistics]);
        ctx.set_materialize_grads(false);
        return [value, weights];
    }

    public override List<Tensor> backward(autograd.AutogradContext ctx, List<Tensor> gradOutputs) => BackwardMemory.Run(gradOutputs, () =>
    {
        var saved = ctx.get_saved_variables();
        int k = saved.Count - 4;
        var sources = saved.Take(k).ToArray();
        Tensor query = saved[k], keyWeight = saved[k + 1], weights = saved[k + 2], statistics = saved[k + 3];
        var dtype = sources[0].dtype;
        var gradValue = gradOutputs[0].IsInvalid ? zeros_like(sources[0]) : gradOutputs[0].to(dtype).contiguous();
        var gradWeights = gradOutputs[1].IsInvalid ? zeros_like(weights) : gradOutputs[1].to(dtype).contiguous();
        var gradSources = sources.Select(s => empty_like(s)).ToArray();
        Tensor gradQuery = empty_like(query), gradKeyWeight = empty_like(keyWeight);
        CpuLoops.Dispatch(dtype, new Backward(sources, query, keyWeight, weights, statistics, gradValue, gradWeights, gradSources, gradQuery, gradKeyWeight));
        return [.. gradSources, gradQuery, gradKeyWeight, null!];
    });

    static unsafe T** SourcePointers<T>(Tensor[] sources) where T : unmanaged
    {
        var result = (T**)CpuLoops.Scratch<nint>(sources.Length);
        for (int j = 0; j < sources.Length; j++) result[j] = CpuLoops.Pointer<T>(sources[j]);
        return result;
    }

    readonly unsafe struct Forward(Tensor[] sources, Tensor query, Tensor keyWeight, double eps, Tensor value, Tensor weights, Tensor statistics) : IKernelBody
    {
        public void Run<T, TVector, TOps>()
            where T : unmanaged, IFloatingPointIeee754<T> where TVector : unmanaged where TOps : struct, IVectorOps<TVector, T>
        {
            int k = sources.Length, d = (int)value.shape[^1];
            long tokens = value.numel() / d;
            T** V = SourcePointers<T>(sources);
            T* w = CpuLoops.Pointer<T>(query), gamma = CpuLoops.Pointer<T>(keyWeight);
            T* h = CpuLoops.Pointer<T>(value), a = CpuLoops.Pointer<T>(weights), stats = CpuLoops.Pointer<T>(statistics);
            T* u = CpuLoops.Scratch<T>(d);
            for (int e = 0; e < d; e++) u[e] = gamma[e] * w[e];
            T epsilon = T.CreateTruncating(eps);
            try
            {
                CpuLoops.ForChunks(tokens, [MethodImpl(MethodImplOptions.AggressiveOptimization)] (_, first, end) =>
                {
                    var pointers = CpuLoops.Scratch<nint>(k + 2);
                    T** rows = (T**)pointers, probe = rows + k, output = probe + 1;
                    probe[0] = u;
                    T* logits = CpuLoops.Scratch<T>(k);
                    for (long t = first; t < end; t++)
                    {
                        for (int j = 0; j < k; j++) rows[j] = V[j] + t * d;
                        T* r = stats + t * 2 * k, p = r + k, at = a + t * k;
                        CpuLoops.Gram<T, TVector, TOps>(rows, k, probe, 1, d, p);
                        T max = T.NegativeInfinity;
                        for (int j = 0; j < k; j++)
                        {
                            r[j] = CpuLoops.InverseRms<T, TVector, TOps>(rows[j], d, epsilon);
                            logits[j] = r[j] * p[j];
                            max = T.Max(max, logits[j]);
                        }
                        T sum = T.Zero;
                        for (int j = 0; j < k; j++) sum += at[j] = T.Exp(logits[j] - max);
                        for (int j = 0; j < k; j++) at[j] /= sum;
                        output[0] = h + t * d;
                        CpuLoops.Mix<T, TVector, TOps>(output, 1, rows, k, at, k, d);
                    }
                    CpuLoops.FreeScratch(pointers);
                    CpuLoops.FreeScratch(logits);
                });
            }
            finally
            {
                CpuLoops.FreeScratch(u);
                CpuLoops.FreeScratch(V);
            }
        }
    }

    readonly unsafe struct Backward(Tensor[] sources, Tensor query, Tensor keyWeight, Tensor weights, Tensor statistics,
        Tensor gradValue, Tensor gradWeights, Tensor[] gradSources, Tensor gradQuery, Tensor gradKeyWeight) : IKernelBody
    {
        public void Run<T, TVector, TOps>()
            where T : unmanaged, IFloatingPointIeee754<T> where TVector : unmanaged where TOps : struct, IVectorOps<TVector, T>
        {
            int k = sources.Length, d = (int)sources[0].shape[^1];
            long tokens = sources[0].numel() / d;
            T** V = SourcePointers<T>(sources), dV = SourcePointers<T>(gradSources);
            T* w = CpuLoops.Pointer<T>(query), gamma = CpuLoops.Pointer<T>(keyWeight);
            T* a = CpuLoops.Pointer<T>(weights), stats = CpuLoops.Pointer<T>(statistics);
            T* g = CpuLoops.Pointer<T>(gradValue), ga = CpuLoops.Pointer<T>(gradWeights);
            T* u = CpuLoops.Scratch<T>(d);
            for (int e = 0; e < d; e++) u[e] = gamma[e] * w[e];
            T width = T.CreateTruncating(d);
            int chunks = CpuLoops.Chunks(tokens);
            var partials = new nint[chunks]; // per chunk: du [d]
            try
            {
                CpuLoops.ForChunks(tokens, [MethodImpl(MethodImplOptions.AggressiveOptimization)] (chunk, first, end) =>
                {
                    T* du = CpuLoops.Scratch<T>(d);
                    new Span<T>(du, d).Clear();
                    partials[chunk] = (nint)du;
                    var pointers = CpuLoops.Scratch<nint>(k + 1);
                    T** rows = (T**)pointers, gradRow = rows + k;
                    T* dots = CpuLoops.Scratch<T>(k);
                    for (long t = first; t < end; t++)
                    {
                        for (int j = 0; j < k; j++) rows[j] = V[j] + t * d;
                        gradRow[0] = g + t * d;
                        T* r = stats + t * 2 * k, p = r + k, at = a + t * k, gat = ga + t * k;
                        CpuLoops.Gram<T, TVector, TOps>(gradRow, 1, rows, k, d, dots);
                        T mean = T.Zero;
                        for (int j = 0; j < k; j++) mean += at[j] * (dots[j] + gat[j]);
                        for (int j = 0; j < k; j++)
                        {
                            T dLogit = at[j] * (dots[j] + gat[j] - mean);
                            T dp = dLogit * r[j];
                            T* dv = dV[j] + t * d;
                            CpuLoops.Combine<T, TVector, TOps>(dv, at[j], gradRow[0], -dp * p[j] * r[j] * r[j] / width, rows[j], null, d);
                            CpuLoops.AddScaled<T, TVector, TOps>(dv, u, dp, d);
                            CpuLoops.AddScaled<T, TVector, TOps>(du, rows[j], dp, d);
                        }
                    }
                    CpuLoops.FreeScratch(pointers);
                    CpuLoops.FreeScratch(dots);
                });
                T* dw = CpuLoops.Pointer<T>(gradQuery), dGamma = CpuLoops.Pointer<T>(gradKeyWeight);
                for (int e = 0; e < d; e++)
                {
                    T total = T.Zero;
                    foreach (var partial in partials) total += ((T*)partial)[e];
                    dw[e] = gamma[e] * total;
                    dGamma[e] = w[e] * total;
                }
            }
            finally
            {
                CpuLoops.FreeScratch(u);
                CpuLoops.FreeScratch(V);
                CpuLoops.FreeScratch(dV);
                foreach (var partial in partials) if (partial != 0) CpuLoops.FreeScratch((void*)partial);
            }
        }
    }
}
