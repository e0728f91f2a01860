using System.Numerics;
using System.Runtime.CompilerServices;
using static TorchSharp.torch;

namespace ResidualLab.Connections.Kernels;

// Axes: t tokens (all leading axes flattened), m fractions of c = d / m values, d width, K = 2 m + 1 dynamic coefficients
// per fraction (m read, m residual, write), K4 = K rounded up to a multiple of 4; L tokens per block (the vector's lanes).

/// <summary>
/// The width step of Frac-Connections on CPU float32/float64 tensors as one autograd function. Per token, with the
/// fractions H_f [c] of h [d]; dynamic: N = LayerNorm(h) (weight gamma, bias beta), w_f = tanh(N_f W) [K] and
/// A_m,ff' = read_ff' + s_a w_f,f', A_r,ff' = residual_ff' + s_a w_f,m+f', B_f = write_f + s_b w_f,2m; static: the
/// parameters alone. It returns the read h'_f' = sum_f A_m,ff' H_f [t, d], the depth matrix [A_r^T | B] [t, m, m + 1]
/// that <see cref="Streams.Write"/> takes with the output split into fractions, and the stream for the depth step to read
/// (whose gradient this function adds in its own pass); the same function as <see cref="FracConnections"/>' tensor
/// operations. As in <see cref="HyperConnectionsWidthStepKernel"/>, the norm is folded into the products, one per
/// fraction (N_f W_k = r ((h - mu)_f . (gamma_f W_k)) + beta_f . W_k), a block of tokens is read once, the maps are
/// computed one token per vector lane, and the backward recomputes the centred rows from the saved mean and 1 / std:
/// dW_k = sum_f (gamma_f A_f,k + beta_f B_f,k), dgamma_f = sum_k W_k A_f,k, dbeta_f = sum_k W_k B_f,k with
/// A_f,k = sum_tokens dv_f,k xhat_f, B_f,k = sum_tokens dv_f,k; d xhat_f = sum_k dv_f,k gamma_f W_k, then LayerNorm's
/// backward over the whole row, plus the read's dH_f = sum_f' A_m,ff' g_f' and the depth step's gradient.
/// </summary>
internal sealed class FracWidthStepKernel : autograd.MultiTensorFunction<FracWidthStepKernel>
{
    public override string Name => nameof(FracWidthStepKernel);

    public static bool Applies(Tensor stream, Tensor read) => CpuLoops.Takes(stream, read);

    /// <summary>The read [..., d], the depth matrix [..., m, m + 1] and the stream for the depth step.</summary>
    /// <param name="projection">W [c, 2 m + 1]; null for static Frac-Connections (with <paramref name="normWeight"/>,
    /// <paramref name="normBias"/> and <paramref name="scales"/>).</param>
    /// <param name="normWeight">gamma [d].</param>
    /// <param name="normBias">beta [d].</param>
    /// <param name="read">A_m [m (from), m (to)].</param>
    /// <param name="residual">A_r [m (from), m (to)].</param>
    /// <param name="write">B [m].</param>
    /// <param name="scales">[2]: s_a, s_b.</param>
    public static (Tensor Read, Tensor Depth, Tensor Stream) Run(Tensor stream, Tensor? projection, Tensor? normWeight, Tensor? normBias,
        Tensor read, Tensor residual, Tensor write, Tensor? scales, double eps)
    {
        var dtype = stream.dtype;
        int m = (int)read.shape[0];
        long c = stream.shape[^1] / m;
        bool dynamic = projection is not null;
        var outputs = apply(stream,
            dynamic ? projection! : zeros(c, 2 * m + 1, dtype: dtype), dynamic ? normWeight!.to(dtype) : ones(stream.shape[^1], dtype: dtype),
            dynamic ? normBias!.to(dtype) : zeros(stream.shape[^1], dtype: dtype), read.to(dtype), residual.to(dtype), write.to(dtype),
            dynamic ? scales!.to(dtype) : zeros(2, dtype: dtype), eps, dynamic);
        return (outputs[0], outputs[1], outputs[2]);
    }

    public override List<Tensor> forward(autograd.AutogradContext ctx, params object[] vars)
    {
        var inputs = vars.Take(8).Select(v => ((Tensor)v).contiguous()).ToArray();
        var stream = inputs[0];
        double eps = (double)vars[8];
        bool dynamic = (bool)vars[9];
        long m = inputs[4].shape[0], d = stream.shape[^1], tokens = stream.numel() / d;
        if (d % m != 0 || inputs[1].shape[0] != d / m || inputs[1].shape[1] != 2 * m + 1)
            throw new ArgumentException($"the dynamic projection [{string.Join(", ", inputs[1].shape)}] does not fit {m} fractions of a width {d}");
        var read = empty_like(stream);
        var depth = empty([.. stream.shape[..^1], m, m + 1], stream.dtype);
        var activations = empty(dynamic ? tokens : 0, m, CpuLoops.RoundUpToFour(2 * m + 1), dtype: stream.dtype); // w = tanh(N W)
        var statistics = empty(dynamic ? tokens : 0, 2, dtype: stream.dtype);                   // mean, 1 / std
        CpuLoops.Dispatch(stream.dtype, new Forward(inputs, eps, dynamic, read, depth, activations, statistics));
        ctx.save_for_backward([.. inputs, activations, statistics]);
        ctx.save_data("dynamic", dynamic);
        ctx.set_materialize_grads(false);
        return [read, depth, stream];
    }

    public override List<Tensor> backward(autograd.AutogradContext ctx, List<Tensor> gradOutputs) => BackwardMemory.Run(gradOutputs, () =>
    {
        var saved = ctx.get_saved_variables();
        var inputs = saved.Take(8).ToArray();
        Tensor stream = inputs[0], activations = saved[8], statistics = saved[9];
        bool dynamic = (bool)ctx.get_data("dynamic");
        long m = inputs[4].shape[0];
        var gradRead = gradOutputs[0].IsInvalid ? zeros_like(stream) : gradOutputs[0].to(stream.dtype).contiguous();
        var gradDepth = gradOutputs[1].IsInvalid ? zeros([.. stream.shape[..^1], m, m + 1], stream.dtype) : gradOutputs[1].to(stream.dtype).contiguous();
        Tensor? fromDepthStep = gradOutputs[2].IsInvalid ? null : gradOutputs[2].to(stream.dtype).contiguous();
        var gradients = inputs.Select(x => empty_like(x)).ToArray();
        CpuLoops.Dispatch(stream.dtype, new Backward(inputs, dynamic, activations, statistics, gradRead, gradDepth, fromDepthStep, gradients));
        if (!dynamic) gradients[1] = gradients[2] = gradients[3] = gradients[7] = null!;
        return [.. gradients, null!, null!];
    });

    /// <summary>A_m [m, m] (row f: from fraction f) and the depth matrix [m (to), m + 1] of a block from w, one token per lane.</summary>
    static unsafe void Maps<T, TVector, TOps>(TVector* w, int m, int k4, T* staticRead, T* staticResidual, T* staticWrite, T* scales,
        TVector* read, TVector* depth)
        where T : unmanaged, IFloatingPointIeee754<T> where TVector : unmanaged where TOps : struct, IVectorOps<TVector, T>
    {
        TVector sa = TOps.Broadcast(scales[0]), sb = TOps.Broadcast(scales[1]);
        for (int f = 0; f < m; f++)
        {
            TVector* wf = w + f * k4;
            for (int g = 0; g < m; g++)
            {
                read[f * m + g] = TOps.MultiplyAdd(sa, wf[g], TOps.Broadcast(staticRead[f * m + g]));
                depth[g * (m + 1) + f] = TOps.MultiplyAdd(sa, wf[m + g], TOps.Broadcast(staticResidual[f * m + g]));
            }
            depth[f * (m + 1) + m] = TOps.MultiplyAdd(sb, wf[2 * m], TOps.Broadcast(staticWrite[f]));
        }
    }

    readonly unsafe struct Forward(Tensor[] inputs, double eps, bool dynamic, Tensor read, Tensor depth, Tensor activations, Tensor statistics) : IKernelBody
    {
        public void Run<T, TVector, TOps>()
            where T : unmanaged, IFloatingPointIeee754<T> where TVector : unmanaged where TOps : struct, IVectorOps<TVector, T>
        {
            var stream = inputs[0];
            int m = (int)inputs[4].shape[0], d = (int)stream.shape[^1], c = d / m, k = 2 * m + 1, k4 = CpuLoops.RoundUpToFour(k), mm = m * (m + 1), L = TOps.Count;
            long tokens = stream.numel() / d;
            T* H = CpuLoops.Pointer<T>(stream);
            T* staticRead = CpuLoops.Pointer<T>(inputs[4]), staticResidual = CpuLoops.Pointer<T>(inputs[5]), staticWrite = CpuLoops.Pointer<T>(inputs[6]);
            T* scales = CpuLoops.Pointer<T>(inputs[7]);
            T* h = CpuLoops.Pointer<T>(read), depthOut = CpuLoops.Pointer<T>(depth);
            T* wOut = dynamic ? CpuLoops.Pointer<T>(activations) : null, stats = dynamic ? CpuLoops.Pointer<T>(statistics) : null;
            T[] offsets = [];
            T* weightedT = dynamic ? CpuLoops.FoldLayerNorm<T>(inputs[1], inputs[2], inputs[3], m, out offsets) : null;
            T epsilon = T.CreateTruncating(eps);
            bool isDynamic = dynamic;
            try
            {
                CpuLoops.ForChunks((tokens + L - 1) / L, [MethodImpl(MethodImplOptions.AggressiveOptimization)] (_, firstBlock, endBlock) =>
                {
                    var pointers = CpuLoops.Scratch<nint>(L + 2 * m);
                    T** rows = (T**)pointers, outputs = rows + L, sources = outputs + m;
                    T* centred = CpuLoops.Scratch<T>((long)L * d), projected = CpuLoops.Scratch<T>((long)m * L * k4);
                    T* rowStats = CpuLoops.Scratch<T>(2 * L), mixes = CpuLoops.Scratch<T>((long)L * m * m);
                    T* stage = CpuLoops.Scratch<T>((long)L * (m * k4 + mm + m * m + 2));
                    var vectors = CpuLoops.Scratch<TVector>(m * k4 + m * m + m * m + mm + 2);
                    TVector* w = vectors, readLanes = w + m * k4, transposed = readLanes + m * m, depthLanes = transposed + m * m, statLanes = depthLanes + mm;
                    for (int e = 0; e < m * k4; e++) w[e] = TOps.Zero;
                    for (long block = firstBlock; block < endBlock; block++)
                    {
                        long first = block * L;
                        int valid = (int)Math.Min(L, tokens - first);
                        if (isDynamic)
                        {
                            for (int j = 0; j < L; j++)
                            {
                                var (mean, invStd) = CpuLoops.Centre<T, TVector, TOps>(H + Math.Min(first + j, tokens - 1) * d, centred + (long)j * d, d, epsilon);
                                rowStats[2 * j] = mean;
                                rowStats[2 * j + 1] = invStd;
                            }
                            for (int f = 0; f < m; f++)
                            {
                                for (int j = 0; j < L; j++) rows[j] = centred + (long)j * d + f * c;
                                CpuLoops.Project<T, TVector, TOps>(rows, L, weightedT + (long)f * k4 * c, k4, c, projected + (long)f * L * k4);
                                CpuLoops.GatherLanes<T, TVector, TOps>(projected + (long)f * L * k4, 0, L, k4, 0, k4, w + f * k4, stage);
                            }
                            CpuLoops.GatherLanes<T, TVector, TOps>(rowStats, 0, L, 2, 0, 2, statLanes, stage);
                            for (int f = 0; f < m; f++)
                                for (int q = 0; q < k4; q++)
                                    w[f * k4 + q] = q < k ? CpuLoops.Tanh<T, TVector, TOps>(TOps.MultiplyAdd(statLanes[1], w[f * k4 + q], TOps.Broadcast(offsets[f * k + q]))) : TOps.Zero;
                            CpuLoops.ScatterLanes<T, TVector, TOps>(w, m * k4, wOut, first, valid, m * k4, 0, stage);
                            for (int j = 0; j < valid; j++)
                            {
                                stats[(first + j) * 2] = rowStats[2 * j];
                                stats[(first + j) * 2 + 1] = rowStats[2 * j + 1];
                            }
                        }
                        Maps<T, TVector, TOps>(w, m, k4, staticRead, staticResidual, staticWrite, scales, readLanes, depthLanes);
                        CpuLoops.ScatterLanes<T, TVector, TOps>(depthLanes, mm, depthOut, first, valid, mm, 0, stage);
                        for (int f = 0; f < m; f++)
                            for (int g = 0; g < m; g++) transposed[g * m + f] = readLanes[f * m + g]; // row g: the weights of output fraction g
                        CpuLoops.ScatterLanes<T, TVector, TOps>(transposed, m * m, mixes, 0, valid, m * m, 0, stage);
                        for (int j = 0; j < valid; j++)
                        {
                            for (int f = 0; f < m; f++)
                            {
                                outputs[f] = h + (first + j) * d + f * c;
                                sources[f] = H + (first + j) * d + f * c;
                            }
                            CpuLoops.Mix<T, TVector, TOps>(outputs, m, sources, m, mixes + (long)j * m * m, m, c);
                        }
                    }
                    CpuLoops.FreeScratch(pointers);
                    CpuLoops.FreeScratch(centred);
                    CpuLoops.FreeScratch(projected);
                    CpuLoops.FreeScratch(rowStats);
                    CpuLoops.FreeScratch(mixes);
                    CpuLoops.FreeScratch(stage);
                    CpuLoops.FreeScratch(vectors);
                });
            }
            finally
            {
                if (weightedT != null) CpuLoops.FreeScratch(weightedT);
            }
        }
    }

    readonly unsafe struct Backward(Tensor[] inputs, bool dynamic, Tensor activations, Tensor statistics, Tensor gradRead, Tensor gradDepth,
        Tensor? fromDepthStep, Tensor[] gradients) : IKernelBody
    {
        public void Run<T, TVector, TOps>()
            where T : unmanaged, IFloatingPointIeee754<T> where TVector : unmanaged where TOps : struct, IVectorOps<TVector, T>
        {
            var stream = inputs[0];
            int m = (int)inputs[4].shape[0], d = (int)stream.shape[^1], c = d / m, k = 2 * m + 1, k4 = CpuLoops.RoundUpToFour(k), mm = m * (m + 1), L = TOps.Count;
            long tokens = stream.numel() / d;
            T* H = CpuLoops.Pointer<T>(stream), W = CpuLoops.Pointer<T>(inputs[1]), gamma = CpuLoops.Pointer<T>(inputs[2]), beta = CpuLoops.Pointer<T>(inputs[3]);
            T* staticRead = CpuLoops.Pointer<T>(inputs[4]), staticResidual = CpuLoops.Pointer<T>(inputs[5]), staticWrite = CpuLoops.Pointer<T>(inputs[6]);
            T* scales = CpuLoops.Pointer<T>(inputs[7]);
            bool isDynamic = dynamic;
            T* wSaved = dynamic ? CpuLoops.Pointer<T>(activations) : null, stats = dynamic ? CpuLoops.Pointer<T>(statistics) : null;
            T* g = CpuLoops.Pointer<T>(gradRead), gDepth = CpuLoops.Pointer<T>(gradDepth);
            T* dDepthStep = fromDepthStep is null ? null : CpuLoops.Pointer<T>(fromDepthStep);
            T* dH = CpuLoops.Pointer<T>(gradients[0]);
            T* weightedT = dynamic ? CpuLoops.FoldLayerNorm<T>(inputs[1], inputs[2], inputs[3], m, out _) : null;
            int chunks = CpuLoops.Chunks((tokens + L - 1) / L);
            var outerSums = new nint[chunks];                 // per chunk: A [m, K4, c]
            int totalsCount = m * m + m * m + m + 2 + m * k;  // d read, d residual, d write, d s_a, d s_b, B [m, K]
            var sums = new double[chunks, totalsCount];
            try
            {
                CpuLoops.ForChunks((tokens + L - 1) / L, [MethodImpl(MethodImplOptions.AggressiveOptimization)] (chunk, firstBlock, endBlock) =>
                {
                    T* outer = CpuLoops.Scratch<T>((long)m * k4 * c);
                    new Span<T>(outer, m * k4 * c).Clear();
                    outerSums[chunk] = (nint)outer;
                    var pointers = CpuLoops.Scratch<nint>(2 * L + 3 * m);
                    T** rows = (T**)pointers, targets = rows + L, fractions = targets + L, gradFractions = fractions + m, outputs = gradFractions + m;
                    T* xhat = CpuLoops.Scratch<T>((long)L * d), dxhat = CpuLoops.Scratch<T>((long)L * d), spare = CpuLoops.Scratch<T>(d);
                    T* dv = CpuLoops.Scratch<T>((long)m * L * k4), dots = CpuLoops.Scratch<T>((long)L * m * m), mixes = CpuLoops.Scratch<T>((long)L * m * m);
                    T* stage = CpuLoops.Scratch<T>((long)L * (m * k4 + mm + m * m + 2));
                    var vectors = CpuLoops.Scratch<TVector>(2 * m * k4 + 2 * mm + 2 * m * m + totalsCount);
                    TVector* w = vectors, dw = w + m * k4, depthGrad = dw + m * k4, readGrad = depthGrad + mm, readLanes = readGrad + m * m;
                    TVector* depthLanes = readLanes + m * m, totals = depthLanes + mm;
                    for (int e = 0; e < totalsCount; e++) totals[e] = TOps.Zero;
                    for (int e = 0; e < m * k4; e++) w[e] = TOps.Zero;
                    TVector sa = TOps.Broadcast(scales[0]), sb = TOps.Broadcast(scales[1]), one = TOps.Broadcast(T.One);
                    T width = T.CreateTruncating(d);
                    for (long block = firstBlock; block < endBlock; block++)
                    {
                        long first = block * L;
                        int valid = (int)Math.Min(L, tokens - first);
                        var mask = CpuLoops.LaneMask<T, TVector, TOps>(valid, stage);
                        for (int j = 0; j < L; j++)
                        {
                            long token = Math.Min(first + j, tokens - 1);
                            targets[j] = j < valid ? dH + (first + j) * d : spare;
                            if (isDynamic)
                                CpuLoops.ScaleAndShift<T, TVector, TOps>(xhat + (long)j * d, H + token * d, stats[token * 2 + 1],
                                    -stats[token * 2] * stats[token * 2 + 1], d);
                            for (int f = 0; f < m; f++)
                            {
                                fractions[f] = H + token * d + f * c;
                                gradFractions[f] = g + token * d + f * c;
                            }
                            CpuLoops.Gram<T, TVector, TOps>(fractions, m, gradFractions, m, c, dots + (long)j * m * m); // H_f . g_f'
                        }
                        if (isDynamic) CpuLoops.GatherLanes<T, TVector, TOps>(wSaved, first, tokens, m * k4, 0, m * k4, w, stage);
                        CpuLoops.GatherLanes<T, TVector, TOps>(gDepth, first, tokens, mm, 0, mm, depthGrad, stage);
                        CpuLoops.GatherLanes<T, TVector, TOps>(dots, 0, L, m * m, 0, m * m, readGrad, stage);
                        Maps<T, TVector, TOps>(w, m, k4, staticRead, staticResidual, staticWrite, scales, readLanes, depthLanes);
                        TVector* dRead = totals, dResidual = dRead + m * m, dWrite = dResidual + m * m, dScales = dWrite + m, dOffsets = dScales + 2;
                        for (int f = 0; f < m; f++)
                        {
                            TVector* wf = w + f * k4, dwf = dw + f * k4;
                            for (int q = 0; q < m; q++)
                            {
                                var dAm = TOps.Multiply(readGrad[f * m + q], mask);
                                dRead[f * m + q] = TOps.Add(dRead[f * m + q], dAm);
                                dwf[q] = TOps.Multiply(sa, dAm);
                                dScales[0] = TOps.MultiplyAdd(dAm, wf[q], dScales[0]);
                                var dAr = TOps.Multiply(depthGrad[q * (m + 1) + f], mask);
                                dResidual[f * m + q] = TOps.Add(dResidual[f * m + q], dAr);
                                dwf[m + q] = TOps.Multiply(sa, dAr);
                                dScales[0] = TOps.MultiplyAdd(dAr, wf[m + q], dScales[0]);
                            }
                            var dB = TOps.Multiply(depthGrad[f * (m + 1) + m], mask);
                            dWrite[f] = TOps.Add(dWrite[f], dB);
                            dwf[2 * m] = TOps.Multiply(sb, dB);
                            dScales[1] = TOps.MultiplyAdd(dB, wf[2 * m], dScales[1]);
                            for (int q = 0; q < k4; q++)
                            {
                                dwf[q] = q < k ? TOps.Multiply(dwf[q], TOps.Subtract(one, TOps.Multiply(wf[q], wf[q]))) : TOps.Zero;
                                if (q < k) dOffsets[f * k + q] = TOps.Add(dOffsets[f * k + q], dwf[q]);
                            }
                        }
                        CpuLoops.ScatterLanes<T, TVector, TOps>(readLanes, m * m, mixes, 0, L, m * m, 0, stage); // A_m per token, row f: from fraction f
                        if (isDynamic)
                        {
                            new Span<T>(dxhat, L * d).Clear();
                            for (int f = 0; f < m; f++)
                            {
                                T* dvf = dv + (long)f * L * k4;
                                CpuLoops.ScatterLanes<T, TVector, TOps>(dw + f * k4, k4, dvf, 0, L, k4, 0, stage);
                                for (int j = 0; j < L; j++) rows[j] = dxhat + (long)j * d + f * c;
                                CpuLoops.AddProjectedBack<T, TVector, TOps>(rows, L, dvf, weightedT + (long)f * k4 * c, k4, c);
                                for (int j = 0; j < L; j++) rows[j] = xhat + (long)j * d + f * c;
                                CpuLoops.AccumulateOuter<T, TVector, TOps>(outer + (long)f * k4 * c, dvf, k4, rows, L, c);
                            }
                        }
                        for (int j = 0; j < L; j++)
                        {
                            long token = Math.Min(first + j, tokens - 1);
                            T* target = targets[j];
                            for (int f = 0; f < m; f++)
                            {
                                outputs[f] = target + f * c;
                                gradFractions[f] = g + token * d + f * c;
                            }
                            CpuLoops.Mix<T, TVector, TOps>(outputs, m, gradFractions, m, mixes + (long)j * m * m, m, c); // dH_f = sum_f' A_m,ff' g_f'
                            if (dDepthStep is not null) CpuLoops.AddScaled<T, TVector, TOps>(target, dDepthStep + token * d, T.One, d);
                            if (!isDynamic) continue;
                            T invStd = stats[token * 2 + 1];
                            T* dx = dxhat + (long)j * d, x = xhat + (long)j * d;
                            T mean1 = CpuLoops.Sum<T, TVector, TOps>(dx, d) / width;
                            T mean2 = CpuLoops.Dot<T, TVector, TOps>(dx, x, d) / width;
                            CpuLoops.ScaleAndShift<T, TVector, TOps>(dx, dx, invStd, -invStd * mean1, d);
                            CpuLoops.Combine<T, TVector, TOps>(target, T.One, dx, -invStd * mean2, x, target, d);
                        }
                    }
                    for (int e = 0; e < totalsCount; e++) sums[chunk, e] = double.CreateTruncating(TOps.Sum(totals[e]));
                    CpuLoops.FreeScratch(pointers);
                    CpuLoops.FreeScratch(xhat);
                    CpuLoops.FreeScratch(dxhat);
                    CpuLoops.FreeScratch(spare);
                    CpuLoops.FreeScratch(dv);
                    CpuLoops.FreeScratch(dots);
                    CpuLoops.FreeScratch(mixes);
                    CpuLoops.FreeScratch(stage);
                    CpuLoops.FreeScratch(vectors);
                });

                var totals = new double[totalsCount];
                for (int e = 0; e < totalsCount; e++)
                    for (int q = 0; q < chunks; q++) totals[e] += sums[q, e];
                T* dRead = CpuLoops.Pointer<T>(gradients[4]), dResidual = CpuLoops.Pointer<T>(gradients[5]), dWrite = CpuLoops.Pointer<T>(gradients[6]);
                for (int e = 0; e < m * m; e++)
                {
                    dRead[e] = T.CreateTruncating(totals[e]);
                    dResidual[e] = T.CreateTruncating(totals[m * m + e]);
                }
                for (int f = 0; f < m; f++) dWrite[f] = T.CreateTruncating(totals[2 * m * m + f]);
                if (!isDynamic) return;
                T* dScales = CpuLoops.Pointer<T>(gradients[7]);
                dScales[0] = T.CreateTruncating(totals[2 * m * m + m]);
                dScales[1] = T.CreateTruncating(totals[2 * m * m + m + 1]);
                int offsetAt = 2 * m * m + m + 2;
                T* dW = CpuLoops.Pointer<T>(gradients[1]), dGamma = CpuLoops.Pointer<T>(gradients[2]), dBeta = CpuLoops.Pointer<T>(gradients[3]);
                new Span<T>(dW, c * k).Clear();
                for (int f = 0; f < m; f++)
                    for (int e = 0; e < c; e++)
                    {
                        T gammaGrad = T.Zero, betaGrad = T.Zero;
                        for (int q = 0; q < k; q++)
                        {
                            T a = T.Zero;
                            foreach (var partial in outerSums) a += ((T*)partial)[((long)f * k4 + q) * c + e];
                            T b = T.CreateTruncating(totals[offsetAt + f * k + q]);
                            dW[e * k + q] += gamma[f * c + e] * a + beta[f * c + e] * b;
                            gammaGrad += W[e * k + q] * a;
                            betaGrad += W[e * k + q] * b;
                        }
                        dGamma[f * c + e] = gammaGrad;
                        dBeta[f * c + e] = betaGrad;
                    }
            }
            finally
            {
                if (weightedT != null) CpuLoops.FreeScratch(weightedT);
                foreach (var partial in outerSums) if (partial != 0) CpuLoops.FreeScratch((void*)partial);
            }
        }
    }
}
