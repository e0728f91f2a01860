using System.Numerics;
using System.Runtime.CompilerServices;
using static TorchSharp.torch;

namespace ResidualLab.Connections.Kernels;

// Axes: t tokens (all leading axes flattened), s streams, d width, K = s + 2 dynamic coefficients per stream (read,
// s residual, write), K4 = K rounded up to a multiple of 4; L tokens per block (the vector's lanes); a row is one stream
// of one token (d values).

/// <summary>
/// The width step of dynamic Hyper-Connections on CPU float32/float64 tensors as one autograd function. Per token and
/// stream i, with N_i = LayerNorm(H_i) (weight gamma, bias beta) and w_i = tanh(N_i W) [K]:
/// A_m,i = read_i + s_a w_i,0, A_r,ij = residual_ij + s_a w_i,1+j, B_i = write_i + s_b w_i,s+1, the read
/// h = sum_i A_m,i H_i. It returns the read [t, d], A_m [t, s], the depth matrix [A_r^T | B] [t, s, s + 1] that
/// <see cref="Streams.Write"/> takes and the stream for the depth step to read (whose gradient this function adds in its
/// own pass); the same function as <see cref="HyperConnections"/>' tensor operations.
/// <para>
/// The norm is folded into the product, an exact reordering: N_i W_k = r_i ((H_i - mu_i) . (gamma W_k)) + beta . W_k,
/// so a block of L tokens is read once and gives the statistics, the product (four rows by four coefficients at a time,
/// in registers), the maps (one token per vector lane) and the read; no normalised copy of the stream is made. The
/// backward recomputes the centred rows from the saved mean and 1 / std. With dv = dw (1 - w^2), xhat = (H - mu) r:
/// dW_k = gamma A_k + beta B_k, dgamma = sum_k W_k A_k, dbeta = sum_k W_k B_k where A_k = sum_rows dv_k xhat and
/// B_k = sum_rows dv_k; d xhat = sum_k dv_k gamma W_k and LayerNorm's backward
/// dH_i = r (d xhat - mean(d xhat) - xhat mean(d xhat xhat)) + A_m,i g, plus the depth step's gradient.
/// </para>
/// </summary>
internal sealed class HyperConnectionsWidthStepKernel : autograd.MultiTensorFunction<HyperConnectionsWidthStepKernel>
{
    public override string Name => nameof(HyperConnectionsWidthStepKernel);

    public static bool Applies(Tensor stream, Tensor projection) => CpuLoops.Takes(stream, projection);

    /// <summary>The read [..., d], A_m [..., s], the depth matrix [..., s, s + 1] and the stream for the depth step.</summary>
    /// <param name="projection">W [d, s + 2].</param>
    /// <param name="normWeight">gamma [d].</param>
    /// <param name="normBias">beta [d].</param>
    /// <param name="read">The static A_m [s].</param>
    /// <param name="residual">The static A_r [s (from), s (to)].</param>
    /// <param name="write">The static B [s].</param>
    /// <param name="scales">[2]: s_a, s_b.</param>
    public static (Tensor Read, Tensor Pre, Tensor Depth, Tensor Stream) Run(Tensor stream, Tensor projection, Tensor normWeight, Tensor normBias,
        Tensor read, Tensor residual, Tensor write, Tensor scales, double eps)
    {
        var dtype = stream.dtype;
        var outputs = apply(stream, projection, normWeight.to(dtype), normBias.to(dtype), read.to(dtype), residual.to(dtype), write.to(dtype),
            scales.to(dtype), eps);
        return (outputs[0], outputs[1], outputs[2], outputs[3]);
    }

    public override List<Tensor> forward(autograd.AutogradContext ctx, params object[] vars)
    {
        var inputs = vars.Take(8).Select(v => ((Tensor)v).contiguous()).ToArray();
        var stream = inputs[0];
        double eps = (double)vars[8];
        long[] lead = stream.shape[..^2];
        long s = stream.shape[^2], d = stream.shape[^1], tokens = stream.numel() / (s * d);
        if (inputs[1].shape[0] != d || inputs[1].shape[1] != s + 2)
            throw new ArgumentException($"the dynamic projection [{string.Join(", ", inputs[1].shape)}] does not fit {s} streams of width {d}");
        var read = empty([.. lead, d], stream.dtype);
        var pre = empty([.. lead, s], stream.dtype);
        var depth = empty([.. lead, s, s + 1], stream.dtype);
        var activations = empty(tokens, s, CpuLoops.RoundUpToFour(s + 2), dtype: stream.dtype); // w = tanh(N W)
        var statistics = empty(tokens, s, 2, dtype: stream.dtype);              // mean, 1 / std
        CpuLoops.Dispatch(stream.dtype, new Forward(inputs, eps, read, pre, depth, activations, statistics));
        ctx.save_for_backward([.. inputs, activations, statistics]);
        ctx.set_materialize_grads(false);
        return [read, pre, depth, stream];
    }

    public override List<Tensor> backward(autograd.AutogradContext ctx, List<Tensor> gradOutputs) => BackwardMemory.Run(gradOutputs, () =>
    {
        var saved = ctx.get_saved_variables();
        var inputs = saved.Take(8).ToArray();
        Tensor stream = inputs[0], activations = saved[8], statistics = saved[9];
        long s = stream.shape[^2], d = stream.shape[^1];
        Tensor Defined(Tensor g, long[] shape) => g.IsInvalid ? zeros(shape, stream.dtype) : g.to(stream.dtype).contiguous();
        var gradRead = Defined(gradOutputs[0], [.. stream.shape[..^2], d]);
        var gradPre = Defined(gradOutputs[1], stream.shape[..^1]);
        var gradDepth = Defined(gradOutputs[2], [.. stream.shape[..^1], s + 1]);
        Tensor? fromDepthStep = gradOutputs[3].IsInvalid ? null : gradOutputs[3].to(stream.dtype).contiguous();
        var gradients = inputs.Select(x => empty_like(x)).ToArray();
        CpuLoops.Dispatch(stream.dtype, new Backward(inputs, activations, statistics, gradRead, gradPre, gradDepth, fromDepthStep, gradients));
        return [.. gradients, null!];
    });

    /// <summary>A_m, A_r and B of a block from w, one token per lane: pre [s], depth [s (to), s + 1] (A_r^T, then B).</summary>
    static unsafe void Maps<T, TVector, TOps>(TVector* w, int s, int k4, T* staticRead, T* staticResidual, T* staticWrite, T* scales,
        TVector* pre, TVector* depth)
        where T : unmanaged, IFloatingPointIeee754<T> where TVector : unmanaged where TOps : struct, IVectorOps<TVector, T>
    {
        TVector sa = TOps.Broadcast(scales[0]), sb = TOps.Broadcast(scales[1]);
        for (int i = 0; i < s; i++)
        {
            TVector* wi = w + i * k4;
            pre[i] = TOps.MultiplyAdd(sa, wi[0], TOps.Broadcast(staticRead[i]));
            for (int j = 0; j < s; j++) depth[j * (s + 1) + i] = TOps.MultiplyAdd(sa, wi[1 + j], TOps.Broadcast(staticResidual[i * s + j]));
            depth[i * (s + 1) + s] = TOps.MultiplyAdd(sb, wi[s + 1], TOps.Broadcast(staticWrite[i]));
        }
    }

    readonly unsafe struct Forward(Tensor[] inputs, double eps, Tensor read, Tensor pre, Tensor depth, Tensor activations, Tensor statistics) : IKernelBody
    {
        public void Run<T, TVector, TOps>()
            where T : unmanaged, IFloatingPointIeee754<T> where TVector : unmanaged where TOps : struct, IVectorOps<TVector, T>
        {
            var stream = inputs[0];
            int s = (int)stream.shape[^2], d = (int)stream.shape[^1], k = s + 2, k4 = CpuLoops.RoundUpToFour(k), m = s * (s + 1), L = TOps.Count, rowsPerBlock = L * s;
            long tokens = stream.numel() / (s * d);
            T* H = CpuLoops.Pointer<T>(stream);
            T* staticRead = CpuLoops.Pointer<T>(inputs[4]), staticResidual = CpuLoops.Pointer<T>(inputs[5]), staticWrite = CpuLoops.Pointer<T>(inputs[6]);
            T* scales = CpuLoops.Pointer<T>(inputs[7]);
            T* h = CpuLoops.Pointer<T>(read), preOut = CpuLoops.Pointer<T>(pre), depthOut = CpuLoops.Pointer<T>(depth);
            T* wOut = CpuLoops.Pointer<T>(activations), stats = CpuLoops.Pointer<T>(statistics);
            T* weightedT = CpuLoops.FoldLayerNorm<T>(inputs[1], inputs[2], inputs[3], 1, out var offsets);
            T epsilon = T.CreateTruncating(eps);
            try
            {
                CpuLoops.ForChunks((tokens + L - 1) / L, [MethodImpl(MethodImplOptions.AggressiveOptimization)] (_, firstBlock, endBlock) =>
                {
                    var pointers = CpuLoops.Scratch<nint>(rowsPerBlock + s + 1);
                    T** rows = (T**)pointers, inputRows = rows + rowsPerBlock, output = inputRows + s;
                    T* centred = CpuLoops.Scratch<T>((long)rowsPerBlock * d), projected = CpuLoops.Scratch<T>((long)rowsPerBlock * k4);
                    T* rowStats = CpuLoops.Scratch<T>(2 * rowsPerBlock), stage = CpuLoops.Scratch<T>((long)L * (s * k4 + m + 2 * s));
                    var vectors = CpuLoops.Scratch<TVector>(s * k4 + s + s + m);
                    TVector* w = vectors, inverseStd = w + s * k4, preLanes = inverseStd + s, depthLanes = preLanes + s;
                    var centredRows = (T**)CpuLoops.Scratch<nint>(rowsPerBlock);
                    for (int q = 0; q < rowsPerBlock; q++) centredRows[q] = centred + (long)q * d;
                    for (long block = firstBlock; block < endBlock; block++)
                    {
                        long first = block * L;
                        int valid = (int)Math.Min(L, tokens - first);
                        for (int j = 0; j < L; j++)
                            for (int i = 0; i < s; i++) rows[j * s + i] = H + (Math.Min(first + j, tokens - 1) * s + i) * d;
                        for (int q = 0; q < rowsPerBlock; q++)
                        {
                            var (mean, invStd) = CpuLoops.Centre<T, TVector, TOps>(rows[q], centredRows[q], d, epsilon);
                            rowStats[2 * q] = mean;
                            rowStats[2 * q + 1] = invStd;
                        }
                        CpuLoops.Project<T, TVector, TOps>(centredRows, rowsPerBlock, weightedT, k4, d, projected);
                        CpuLoops.GatherLanes<T, TVector, TOps>(projected, 0, L, s * k4, 0, s * k4, w, stage);
                        CpuLoops.GatherLanes<T, TVector, TOps>(rowStats, 0, L, 2 * s, 0, 2 * s, depthLanes, stage); // mean, 1/std per stream
                        for (int i = 0; i < s; i++)
                        {
                            inverseStd[i] = depthLanes[2 * i + 1];
                            for (int c = 0; c < k4; c++)
                                w[i * k4 + c] = c < k ? CpuLoops.Tanh<T, TVector, TOps>(TOps.MultiplyAdd(inverseStd[i], w[i * k4 + c], TOps.Broadcast(offsets[c]))) : TOps.Zero;
                        }
                        Maps<T, TVector, TOps>(w, s, k4, staticRead, staticResidual, staticWrite, scales, preLanes, depthLanes);
                        CpuLoops.ScatterLanes<T, TVector, TOps>(w, s * k4, wOut, first, valid, s * k4, 0, stage);
                        CpuLoops.ScatterLanes<T, TVector, TOps>(preLanes, s, preOut, first, valid, s, 0, stage);
                        CpuLoops.ScatterLanes<T, TVector, TOps>(depthLanes, m, depthOut, first, valid, m, 0, stage);
                        for (int j = 0; j < valid; j++)
                        {
                            for (int e = 0; e < 2 * s; e++) stats[(first + j) * 2 * s + e] = rowStats[j * 2 * s + e];
                            for (int i = 0; i < s; i++) inputRows[i] = rows[j * s + i];
                            output[0] = h + (first + j) * d;
                            CpuLoops.Mix<T, TVector, TOps>(output, 1, inputRows, s, preOut + (first + j) * s, s, d);
                        }
                    }
                    CpuLoops.FreeScratch(pointers);
                    CpuLoops.FreeScratch(centred);
                    CpuLoops.FreeScratch(projected);
                    CpuLoops.FreeScratch(rowStats);
                    CpuLoops.FreeScratch(stage);
                    CpuLoops.FreeScratch(vectors);
                    CpuLoops.FreeScratch(centredRows);
                });
            }
            finally
            {
                CpuLoops.FreeScratch(weightedT);
            }
        }
    }

    readonly unsafe struct Backward(Tensor[] inputs, Tensor activations, Tensor statistics, Tensor gradRead, Tensor gradPre, Tensor gradDepth,
        Tensor? fromDepthStep, Tensor[] gradients) : IKernelBody
    {
        public void Run<T, TVector, TOps>()
            where T : unmanaged, IFloatingPointIeee754<T> where TVector : unmanaged where TOps : struct, IVectorOps<TVector, T>
        {
            var stream = inputs[0];
            int s = (int)stream.shape[^2], d = (int)stream.shape[^1], k = s + 2, k4 = CpuLoops.RoundUpToFour(k), m = s * (s + 1), L = TOps.Count, rowsPerBlock = L * s;
            long tokens = stream.numel() / (s * d);
            T* H = CpuLoops.Pointer<T>(stream), W = CpuLoops.Pointer<T>(inputs[1]), gamma = CpuLoops.Pointer<T>(inputs[2]), beta = CpuLoops.Pointer<T>(inputs[3]);
            T* staticRead = CpuLoops.Pointer<T>(inputs[4]), scales = CpuLoops.Pointer<T>(inputs[7]);
            T* wSaved = CpuLoops.Pointer<T>(activations), stats = CpuLoops.Pointer<T>(statistics);
            T* g = CpuLoops.Pointer<T>(gradRead), gPre = CpuLoops.Pointer<T>(gradPre), gDepth = CpuLoops.Pointer<T>(gradDepth);
            T* dDepthStep = fromDepthStep is null ? null : CpuLoops.Pointer<T>(fromDepthStep);
            T* dH = CpuLoops.Pointer<T>(gradients[0]);
            T* weightedT = CpuLoops.FoldLayerNorm<T>(inputs[1], inputs[2], inputs[3], 1, out _);
            int chunks = CpuLoops.Chunks((tokens + L - 1) / L);
            var outerSums = new nint[chunks];                 // per chunk: A [K4, d]
            int totalsCount = s + s * s + s + 2 + k;          // d read, d residual [i, j], d write, d s_a, d s_b, B
            var sums = new double[chunks, totalsCount];
            try
            {
                CpuLoops.ForChunks((tokens + L - 1) / L, [MethodImpl(MethodImplOptions.AggressiveOptimization)] (chunk, firstBlock, endBlock) =>
                {
                    T* outer = CpuLoops.Scratch<T>((long)k4 * d);
                    new Span<T>(outer, k4 * d).Clear();
                    outerSums[chunk] = (nint)outer;
                    var pointers = CpuLoops.Scratch<nint>(3 * rowsPerBlock + 2 * L);
                    T** rows = (T**)pointers, normalised = rows + rowsPerBlock, dNormalised = normalised + rowsPerBlock;
                    T** gradRows = dNormalised + rowsPerBlock, targets = gradRows + L;
                    T* xhat = CpuLoops.Scratch<T>((long)rowsPerBlock * d), dxhat = CpuLoops.Scratch<T>((long)rowsPerBlock * d);
                    T* spare = CpuLoops.Scratch<T>((long)s * d);
                    T* dv = CpuLoops.Scratch<T>((long)rowsPerBlock * k4), dots = CpuLoops.Scratch<T>(rowsPerBlock);
                    T* perRow = CpuLoops.Scratch<T>(2 * rowsPerBlock), stage = CpuLoops.Scratch<T>((long)L * (s * k4 + m + 2 * s));
                    var vectors = CpuLoops.Scratch<TVector>(2 * s * k4 + m + 4 * s + totalsCount);
                    TVector* w = vectors, dw = w + s * k4, depthGrad = dw + s * k4, preGrad = depthGrad + m, readDots = preGrad + s;
                    TVector* pre = readDots + s, totals = pre + s;
                    for (int e = 0; e < totalsCount; e++) totals[e] = TOps.Zero;
                    for (int q = 0; q < rowsPerBlock; q++)
                    {
                        normalised[q] = xhat + (long)q * d;
                        dNormalised[q] = dxhat + (long)q * d;
                    }
                    TVector sa = TOps.Broadcast(scales[0]), sb = TOps.Broadcast(scales[1]), one = TOps.Broadcast(T.One);
                    for (long block = firstBlock; block < endBlock; block++)
                    {
                        long first = block * L;
                        int valid = (int)Math.Min(L, tokens - first);
                        var mask = CpuLoops.LaneMask<T, TVector, TOps>(valid, stage);
                        for (int j = 0; j < L; j++)
                        {
                            long token = Math.Min(first + j, tokens - 1);
                            gradRows[j] = g + token * d;
                            targets[j] = j < valid ? dH + (first + j) * s * d : spare;
                            for (int i = 0; i < s; i++)
                            {
                                int q = j * s + i;
                                rows[q] = H + (token * s + i) * d;
                                T mean = stats[(token * s + i) * 2], invStd = stats[(token * s + i) * 2 + 1];
                                CpuLoops.ScaleAndShift<T, TVector, TOps>(normalised[q], rows[q], invStd, -mean * invStd, d);
                            }
                            CpuLoops.Gram<T, TVector, TOps>(gradRows + j, 1, rows + j * s, s, d, dots + j * s);
                        }
                        CpuLoops.GatherLanes<T, TVector, TOps>(wSaved, first, tokens, s * k4, 0, s * k4, w, stage);
                        CpuLoops.GatherLanes<T, TVector, TOps>(gDepth, first, tokens, m, 0, m, depthGrad, stage);
                        CpuLoops.GatherLanes<T, TVector, TOps>(gPre, first, tokens, s, 0, s, preGrad, stage);
                        CpuLoops.GatherLanes<T, TVector, TOps>(dots, 0, L, s, 0, s, readDots, stage);

                        // d read_i, d residual_ij, d write_i, d s_a, d s_b, then dv = dw (1 - w^2) and B.
                        TVector* dRead = totals, dResidual = dRead + s, dWrite = dResidual + s * s, dScales = dWrite + s, dOffsets = dScales + 2;
                        for (int i = 0; i < s; i++)
                        {
                            TVector* wi = w + i * k4, dwi = dw + i * k4;
                            pre[i] = TOps.MultiplyAdd(sa, wi[0], TOps.Broadcast(staticRead[i]));
                            var dPre = TOps.Multiply(TOps.Add(preGrad[i], readDots[i]), mask);
                            dRead[i] = TOps.Add(dRead[i], dPre);
                            dwi[0] = TOps.Multiply(sa, dPre);
                            dScales[0] = TOps.MultiplyAdd(dPre, wi[0], dScales[0]);
                            for (int j = 0; j < s; j++)
                            {
                                var dResidualIj = TOps.Multiply(depthGrad[j * (s + 1) + i], mask);
                                dResidual[i * s + j] = TOps.Add(dResidual[i * s + j], dResidualIj);
                                dwi[1 + j] = TOps.Multiply(sa, dResidualIj);
                                dScales[0] = TOps.MultiplyAdd(dResidualIj, wi[1 + j], dScales[0]);
                            }
                            var dWriteI = TOps.Multiply(depthGrad[i * (s + 1) + s], mask);
                            dWrite[i] = TOps.Add(dWrite[i], dWriteI);
                            dwi[s + 1] = TOps.Multiply(sb, dWriteI);
                            dScales[1] = TOps.MultiplyAdd(dWriteI, wi[s + 1], dScales[1]);
                            for (int c = 0; c < k4; c++)
                            {
                                dwi[c] = c < k ? TOps.Multiply(dwi[c], TOps.Subtract(one, TOps.Multiply(wi[c], wi[c]))) : TOps.Zero;
                                if (c < k) dOffsets[c] = TOps.Add(dOffsets[c], dwi[c]);
                            }
                        }
                        CpuLoops.ScatterLanes<T, TVector, TOps>(dw, s * k4, dv, 0, L, s * k4, 0, stage);
                        CpuLoops.ScatterLanes<T, TVector, TOps>(pre, s, perRow, 0, L, s, 0, stage);   // A_m per row

                        new Span<T>(dxhat, rowsPerBlock * d).Clear();
                        CpuLoops.AddProjectedBack<T, TVector, TOps>(dNormalised, rowsPerBlock, dv, weightedT, k4, d);
                        CpuLoops.AccumulateOuter<T, TVector, TOps>(outer, dv, k4, normalised, rowsPerBlock, d);
                        T width = T.CreateTruncating(d);
                        for (int j = 0; j < L; j++)
                        {
                            long token = Math.Min(first + j, tokens - 1);
                            for (int i = 0; i < s; i++)
                            {
                                int q = j * s + i;
                                T invStd = stats[(token * s + i) * 2 + 1];
                                T mean1 = CpuLoops.Sum<T, TVector, TOps>(dNormalised[q], d) / width;
                                T mean2 = CpuLoops.Dot<T, TVector, TOps>(dNormalised[q], normalised[q], d) / width;
                                T* target = targets[j] + i * d;
                                CpuLoops.ScaleAndShift<T, TVector, TOps>(dNormalised[q], dNormalised[q], invStd, -invStd * mean1, d);
                                CpuLoops.Combine<T, TVector, TOps>(target, T.One, dNormalised[q], -invStd * mean2, normalised[q],
                                    dDepthStep is null ? null : dDepthStep + (token * s + i) * d, d);
                                CpuLoops.AddScaled<T, TVector, TOps>(target, gradRows[j], perRow[q], d);
                            }
                        }
                    }
                    for (int e = 0; e < totalsCount; e++) sums[chunk, e] = double.CreateTruncating(TOps.Sum(totals[e]));
                    CpuLoops.FreeScratch(pointers);
                    CpuLoops.FreeScratch(xhat);
                    CpuLoops.FreeScratch(dxhat);
                    CpuLoops.FreeScratch(spare);
                    CpuLoops.FreeScratch(dv);
                    CpuLoops.FreeScratch(dots);
                    CpuLoops.FreeScratch(perRow);
                    CpuLoops.FreeScratch(stage);
                    CpuLoops.FreeScratch(vectors);
                });

                var totals = new double[totalsCount];
                for (int e = 0; e < totalsCount; e++)
                    for (int c = 0; c < chunks; c++) totals[e] += sums[c, e];
                T* dW = CpuLoops.Pointer<T>(gradients[1]), dGamma = CpuLoops.Pointer<T>(gradients[2]), dBeta = CpuLoops.Pointer<T>(gradients[3]);
                T* dRead = CpuLoops.Pointer<T>(gradients[4]), dResidual = CpuLoops.Pointer<T>(gradients[5]), dWrite = CpuLoops.Pointer<T>(gradients[6]);
                T* dScales = CpuLoops.Pointer<T>(gradients[7]);
                for (int i = 0; i < s; i++)
                {
                    dRead[i] = T.CreateTruncating(totals[i]);
                    dWrite[i] = T.CreateTruncating(totals[s + s * s + i]);
                    for (int j = 0; j < s; j++) dResidual[i * s + j] = T.CreateTruncating(totals[s + i * s + j]);
                }
                dScales[0] = T.CreateTruncating(totals[2 * s + s * s]);
                dScales[1] = T.CreateTruncating(totals[2 * s + s * s + 1]);
                var offsetGrads = totals[(2 * s + s * s + 2)..];
                for (int e = 0; e < d; e++)
                {
                    T gammaGrad = T.Zero, betaGrad = T.Zero;
                    for (int c = 0; c < k; c++)
                    {
                        T a = T.Zero;
                        foreach (var partial in outerSums) a += ((T*)partial)[(long)c * d + e];
                        T b = T.CreateTruncating(offsetGrads[c]);
                        dW[e * k + c] = gamma[e] * a + beta[e] * b;
                        gammaGrad += W[e * k + c] * a;
                        betaGrad += W[e * k + c] * b;
                    }
                    dGamma[e] = gammaGrad;
                    dBeta[e] = betaGrad;
                }
            }
            finally
            {
                CpuLoops.FreeScratch(weightedT);
                foreach (var partial in outerSums) if (partial != 0) CpuLoops.FreeScratch((void*)partial);
            }
        }
    }
}
