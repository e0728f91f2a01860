using System.Numerics;
using System.Runtime.CompilerServices;
using static TorchSharp.torch;

namespace ResidualLab.Connections.Kernels;

// Axes: t tokens (all leading axes flattened), s streams, d width, N = s d, K = 2 s + r map coefficients (r the
// residual map's logits), K4 = K rounded up to a multiple of 4; L tokens per block (the vector's lanes).

/// <summary>
/// The width step of mHC, mHC-lite and KromHC on CPU float32/float64 tensors as one autograd function: from the stream
/// H [t, s, d], with x = flatten(H), c = (x phi) / rms(x), H_pre = sigmoid(a_pre c_pre + b_pre),
/// H_post = 2 sigmoid(a_post c_post + b_post), H_res = R(a_res c_res + b_res) with R the scheme's residual map
/// (<see cref="IResidualMap"/>: Sinkhorn, permutations, Kronecker factors), and the read h = sum_s H_pre,s H_s. It returns
/// the read [t, d], H_pre [t, s] and the depth matrix D = [H_res | H_post] [t, s, s + 1] that <see cref="Streams.Write"/>
/// takes, the same function as the schemes' tensor operations (<c>WidthWithTensorOps</c>), and the stream itself for the
/// depth step to read: the depth step's gradient of the stream then comes back through this function, which adds it to its
/// own in the same pass instead of autograd adding two [t, s, d] gradients in another.
/// <para>
/// One pass over the stream: a block of L tokens is read once from memory and, while in cache, gives its sums of squares,
/// its product with phi (four tokens by four coefficients at a time, in registers, instead of a BLAS call that wakes
/// its threads for a [t, N] x [N, K] product), the maps (every per-token map computed for the L tokens at once, one
/// per vector lane, Sinkhorn included) and the read. It keeps x phi [t, K4] and 1 / rms [t] for the backward, and
/// recomputes the maps there.
/// </para>
/// <para>
/// Backward per token, with u = 1 / rms, z the pre-activations and P = x phi: dz from the sigmoids and the residual
/// map's backward, dc = a dz, dP = u dc, du = dc . P, d(x . x) = -du u^3 / (2 N);
/// dH_s = H_pre,s g + 2 d(x . x) H_s + (dP phi^T)_s + the depth step's gradient, dphi = sum over tokens of x^T dP,
/// dH_pre,s also gets H_s . g. Again one pass per block, the stream's gradient written once.
/// </para>
/// </summary>
internal sealed class MhcWidthStepKernel : autograd.MultiTensorFunction<MhcWidthStepKernel>
{
    public override string Name => nameof(MhcWidthStepKernel);

    public static bool Applies(Tensor stream, Tensor phi) => CpuLoops.Takes(stream, phi);

    /// <summary>
    /// The read [..., d], H_pre [..., s] and the depth matrix [H_res | H_post] [..., s, s + 1] of <paramref name="stream"/> [..., s, d],
    /// and the stream for the depth step to read (the same values).
    /// </summary>
    /// <param name="phi">[s d, 2 s + r].</param>
    /// <param name="alphas">[3]: a_pre, a_post, a_res.</param>
    /// <param name="biases">[2 s + r]: b_pre, b_post, b_res flattened.</param>
    /// <param name="map">H_res from its r logits.</param>
    public static (Tensor Read, Tensor Pre, Tensor Depth, Tensor Stream) Run(Tensor stream, Tensor phi, Tensor alphas, Tensor biases, IResidualMap map, double eps)
    {
        var outputs = apply(stream, phi, alphas.to(stream.dtype), biases.to(stream.dtype), map, eps);
        return (outputs[0], outputs[1], outputs[2], outputs[3]);
    }

    public override List<Tensor> forward(autograd.AutogradContext ctx, params object[] vars)
    {
        var stream = ((Tensor)vars[0]).contiguous();
        var phi = ((Tensor)vars[1]).contiguous();
        var alphas = ((Tensor)vars[2]).contiguous();
        var biases = ((Tensor)vars[3]).contiguous();
        var map = (IResidualMap)vars[4];
        double eps = (double)vars[5];
        long[] lead = stream.shape[..^2];
        long s = stream.shape[^2], d = stream.shape[^1], tokens = stream.numel() / (s * d);
        if (phi.shape[0] != s * d || phi.shape[1] != 2 * s + map.Logits)
            throw new ArgumentException($"phi [{string.Join(", ", phi.shape)}] does not fit {s} streams of width {d} and {map.Logits} residual logits");

        var read = empty([.. lead, d], stream.dtype);
        var pre = empty([.. lead, s], stream.dtype);
        var depth = empty([.. lead, s, s + 1], stream.dtype);
        var projected = empty(tokens, CpuLoops.RoundUpToFour(phi.shape[1]), dtype: stream.dtype);
        var inverseRms = empty(tokens, dtype: stream.dtype);
        Dispatch(map, new Forward(stream, phi, alphas, biases, eps, read, pre, depth, projected, inverseRms));
        ctx.save_for_backward([stream, phi, alphas, biases, projected, inverseRms]);
        ctx.save_data("map", map);
        ctx.set_materialize_grads(false); // an output nothing used gets no gradient (the stream's, before the depth step runs)
        return [read, pre, depth, stream];
    }

    public override List<Tensor> backward(autograd.AutogradContext ctx, List<Tensor> gradOutputs) => BackwardMemory.Run(gradOutputs, () =>
    {
        var saved = ctx.get_saved_variables();
        Tensor stream = saved[0], phi = saved[1], alphas = saved[2], biases = saved[3], projected = saved[4], inverseRms = saved[5];
        var map = (IResidualMap)ctx.get_data("map");
        long s = stream.shape[^2], d = stream.shape[^1];
        Tensor Defined(Tensor g, long[] shape) => g.IsInvalid ? zeros(shape, stream.dtype) : g.to(stream.dtype).contiguous();
        var gradRead = Defined(gradOutputs[0], [.. stream.shape[..^2], d]);
        var gradPre = Defined(gradOutputs[1], stream.shape[..^1]);
        var gradDepth = Defined(gradOutputs[2], [.. stream.shape[..^1], s + 1]);
        Tensor? gradFromDepthStep = gradOutputs[3].IsInvalid ? null : gradOutputs[3].to(stream.dtype).contiguous();
        var gradStream = empty_like(stream);
        var gradPhi = empty_like(phi);
        var gradAlphas = empty_like(alphas);
        var gradBiases = empty_like(biases);
        Dispatch(map, new Backward(stream, phi, alphas, biases, projected, inverseRms, gradRead, gradPre, gradDepth, gradFromDepthStep,
            gradStream, gradPhi, gradAlphas, gradBiases));
        return [gradStream, gradPhi, gradAlphas, gradBiases, null!, null!];
    });

    static void Dispatch<TBody>(IResidualMap map, TBody body) where TBody : struct, IMapBody
    {
        var dtype = body.DType;
        switch (map)
        {
            case SinkhornMap sinkhorn: CpuLoops.Dispatch(dtype, new WithMap<SinkhornMap, TBody>(sinkhorn, body)); break;
            case PermutationMap permutations: CpuLoops.Dispatch(dtype, new WithMap<PermutationMap, TBody>(permutations, body)); break;
            case KroneckerMap kronecker: CpuLoops.Dispatch(dtype, new WithMap<KroneckerMap, TBody>(kronecker, body)); break;
            default: throw new ArgumentException($"no CPU kernel for the residual map {map.GetType().Name}");
        }
    }

    /// <summary>A pass compiled for one residual map as well as the element type and vector width.</summary>
    interface IMapBody
    {
        ScalarType DType { get; }
        void Run<T, TVector, TOps, TMap>(TMap map)
            where T : unmanaged, IFloatingPointIeee754<T> where TVector : unmanaged where TOps : struct, IVectorOps<TVector, T>
            where TMap : struct, IResidualMap;
    }

    readonly struct WithMap<TMap, TBody>(TMap map, TBody body) : IKernelBody where TMap : struct, IResidualMap where TBody : struct, IMapBody
    {
        public void Run<T, TVector, TOps>()
            where T : unmanaged, IFloatingPointIeee754<T> where TVector : unmanaged where TOps : struct, IVectorOps<TVector, T> =>
            body.Run<T, TVector, TOps, TMap>(map);
    }

    /// <summary>phi [N, K] transposed into K4 rows of N (the padding rows zero), the layout the row products take.</summary>
    static unsafe T* Transposed<T>(Tensor phi) where T : unmanaged, IFloatingPointIeee754<T>
    {
        int n = (int)phi.shape[0], k = (int)phi.shape[1], padded = CpuLoops.RoundUpToFour(k);
        T* source = CpuLoops.Pointer<T>(phi), result = CpuLoops.Scratch<T>((long)padded * n);
        for (int c = 0; c < padded; c++)
            for (int e = 0; e < n; e++) result[(long)c * n + e] = c < k ? source[(long)e * k + c] : T.Zero;
        return result;
    }

    /// <summary>The per-token coefficients of a block, one token per lane: c = u P, then the pre-activations and maps.</summary>
    unsafe struct Lanes<TVector> where TVector : unmanaged
    {
        public TVector* C, Pre, Post, Logits, Res, State, Work;

        public static Lanes<TVector> Allocate(int s, int k, int state, out TVector* memory)
        {
            int r = k - 2 * s;
            memory = CpuLoops.Scratch<TVector>(k + 2 * s + r + s * s + state + 4 * s + s * s + 8);
            var lanes = new Lanes<TVector> { C = memory };
            lanes.Pre = lanes.C + k;
            lanes.Post = lanes.Pre + s;
            lanes.Logits = lanes.Post + s;
            lanes.Res = lanes.Logits + r;
            lanes.State = lanes.Res + s * s;
            lanes.Work = lanes.State + state;
            return lanes;
        }
    }

    /// <summary>From P (x phi) and u (1 / rms) of a block: c, H_pre, H_post and the residual logits.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static unsafe void Coefficients<T, TVector, TOps>(Lanes<TVector> lanes, TVector* projected, TVector u, int s, int k, T* a, T* b)
        where T : unmanaged, IFloatingPointIeee754<T> where TVector : unmanaged where TOps : struct, IVectorOps<TVector, T>
    {
        var two = TOps.Broadcast(T.CreateTruncating(2));
        TVector aPre = TOps.Broadcast(a[0]), aPost = TOps.Broadcast(a[1]), aRes = TOps.Broadcast(a[2]);
        for (int e = 0; e < k; e++) lanes.C[e] = TOps.Multiply(u, projected[e]);
        for (int i = 0; i < s; i++)
        {
            lanes.Pre[i] = CpuLoops.Sigmoid<T, TVector, TOps>(TOps.MultiplyAdd(aPre, lanes.C[i], TOps.Broadcast(b[i])));
            lanes.Post[i] = TOps.Multiply(two, CpuLoops.Sigmoid<T, TVector, TOps>(TOps.MultiplyAdd(aPost, lanes.C[s + i], TOps.Broadcast(b[s + i]))));
        }
        for (int e = 2 * s; e < k; e++) lanes.Logits[e - 2 * s] = TOps.MultiplyAdd(aRes, lanes.C[e], TOps.Broadcast(b[e]));
    }

    readonly unsafe struct Forward(Tensor stream, Tensor phi, Tensor alphas, Tensor biases, double eps,
        Tensor read, Tensor pre, Tensor depth, Tensor projected, Tensor inverseRms) : IMapBody
    {
        public ScalarType DType => stream.dtype;

        public void Run<T, TVector, TOps, TMap>(TMap map)
            where T : unmanaged, IFloatingPointIeee754<T> where TVector : unmanaged where TOps : struct, IVectorOps<TVector, T>
            where TMap : struct, IResidualMap
        {
            int s = (int)stream.shape[^2], d = (int)stream.shape[^1], n = s * d, k = (int)phi.shape[1], k4 = CpuLoops.RoundUpToFour(k), L = TOps.Count;
            long tokens = stream.numel() / n;
            T* H = CpuLoops.Pointer<T>(stream), a = CpuLoops.Pointer<T>(alphas), b = CpuLoops.Pointer<T>(biases);
            T* h = CpuLoops.Pointer<T>(read), preOut = CpuLoops.Pointer<T>(pre), depthOut = CpuLoops.Pointer<T>(depth);
            T* P = CpuLoops.Pointer<T>(projected), U = CpuLoops.Pointer<T>(inverseRms);
            T* phiT = Transposed<T>(phi);
            T epsilon = T.CreateTruncating(eps);
            var residual = map;
            try
            {
                CpuLoops.ForChunks((tokens + L - 1) / L, [MethodImpl(MethodImplOptions.AggressiveOptimization)] (_, firstBlock, endBlock) =>
                {
                    var pointers = CpuLoops.Scratch<nint>(L + s + 1);
                    T** rows = (T**)pointers, inputs = rows + L, output = inputs + s;
                    T* block = CpuLoops.Scratch<T>((long)L * k4), stage = CpuLoops.Scratch<T>((long)L * (k4 + s * s + 2 * s + 2));
                    var lanes = Lanes<TVector>.Allocate(s, k, residual.StateVectors, out var memory);
                    TVector* inverseRmsLane = lanes.Work;
                    var vectors = CpuLoops.Scratch<TVector>(k4 + s * (s + 1));
                    TVector* depthLanes = vectors + k4;
                    for (long blockIndex = firstBlock; blockIndex < endBlock; blockIndex++)
                    {
                        long first = blockIndex * L;
                        int valid = (int)Math.Min(L, tokens - first);
                        for (int j = 0; j < L; j++) rows[j] = H + Math.Min(first + j, tokens - 1) * n;
                        for (int j = 0; j < valid; j++)
                            U[first + j] = CpuLoops.InverseRms<T, TVector, TOps>(rows[j], n, epsilon);
                        CpuLoops.Project<T, TVector, TOps>(rows, L, phiT, k4, n, block);
                        for (int j = 0; j < valid; j++)
                            for (int e = 0; e < k4; e++) P[(first + j) * k4 + e] = block[j * k4 + e];

                        CpuLoops.GatherLanes<T, TVector, TOps>(block, 0, L, k4, 0, k, vectors, stage);
                        CpuLoops.GatherLanes<T, TVector, TOps>(U, first, tokens, 1, 0, 1, inverseRmsLane, stage);
                        Coefficients<T, TVector, TOps>(lanes, vectors, inverseRmsLane[0], s, k, a, b);
                        residual.Forward<T, TVector, TOps>(lanes.Logits, lanes.Res, lanes.State);
                        for (int i = 0; i < s; i++)
                        {
                            for (int c = 0; c < s; c++) depthLanes[i * (s + 1) + c] = lanes.Res[i * s + c];
                            depthLanes[i * (s + 1) + s] = lanes.Post[i];
                        }
                        CpuLoops.ScatterLanes<T, TVector, TOps>(depthLanes, s * (s + 1), depthOut, first, valid, s * (s + 1), 0, stage);
                        CpuLoops.ScatterLanes<T, TVector, TOps>(lanes.Pre, s, preOut, first, valid, s, 0, stage);

                        for (int j = 0; j < valid; j++)
                        {
                            for (int i = 0; i < s; i++) inputs[i] = rows[j] + i * d;
                            output[0] = h + (first + j) * d;
                            CpuLoops.Mix<T, TVector, TOps>(output, 1, inputs, s, preOut + (first + j) * s, s, d);
                        }
                    }
                    CpuLoops.FreeScratch(pointers);
                    CpuLoops.FreeScratch(block);
                    CpuLoops.FreeScratch(stage);
                    CpuLoops.FreeScratch(memory);
                    CpuLoops.FreeScratch(vectors);
                });
            }
            finally
            {
                CpuLoops.FreeScratch(phiT);
            }
        }
    }

    readonly unsafe struct Backward(Tensor stream, Tensor phi, Tensor alphas, Tensor biases, Tensor projected, Tensor inverseRms,
        Tensor gradRead, Tensor gradPre, Tensor gradDepth, Tensor? gradFromDepthStep,
        Tensor gradStream, Tensor gradPhi, Tensor gradAlphas, Tensor gradBiases) : IMapBody
    {
        public ScalarType DType => stream.dtype;

        public void Run<T, TVector, TOps, TMap>(TMap map)
            where T : unmanaged, IFloatingPointIeee754<T> where TVector : unmanaged where TOps : struct, IVectorOps<TVector, T>
            where TMap : struct, IResidualMap
        {
            int s = (int)stream.shape[^2], d = (int)stream.shape[^1], n = s * d, k = (int)phi.shape[1], k4 = CpuLoops.RoundUpToFour(k), L = TOps.Count;
            int m = s * (s + 1);
            long tokens = stream.numel() / n;
            T* H = CpuLoops.Pointer<T>(stream), a = CpuLoops.Pointer<T>(alphas), b = CpuLoops.Pointer<T>(biases);
            T* P = CpuLoops.Pointer<T>(projected), U = CpuLoops.Pointer<T>(inverseRms);
            T* g = CpuLoops.Pointer<T>(gradRead), gPre = CpuLoops.Pointer<T>(gradPre), gDepth = CpuLoops.Pointer<T>(gradDepth);
            T* dH = CpuLoops.Pointer<T>(gradStream);
            T* dDepthStep = gradFromDepthStep is null ? null : CpuLoops.Pointer<T>(gradFromDepthStep);
            T* phiT = Transposed<T>(phi);
            T width = T.CreateTruncating(n);
            int chunks = CpuLoops.Chunks((tokens + L - 1) / L);
            var gradPhiT = new nint[chunks];                 // per chunk: [K4, N]
            var sums = new double[chunks, 3 + k];           // per chunk: da_pre, da_post, da_res, db
            var residual = map;
            try
            {
                CpuLoops.ForChunks((tokens + L - 1) / L, [MethodImpl(MethodImplOptions.AggressiveOptimization)] (chunk, firstBlock, endBlock) =>
                {
                    T* dPhiT = CpuLoops.Scratch<T>((long)k4 * n);
                    new Span<T>(dPhiT, k4 * n).Clear();
                    gradPhiT[chunk] = (nint)dPhiT;
                    var pointers = CpuLoops.Scratch<nint>(2 * L);
                    T** rows = (T**)pointers, targets = rows + L;
                    T* spare = CpuLoops.Scratch<T>(n);          // where the padding tokens' gradient goes
                    T* dProjected = CpuLoops.Scratch<T>((long)L * k4), stage = CpuLoops.Scratch<T>((long)L * (k4 + m + 2 * s + 2));
                    T* readDots = CpuLoops.Scratch<T>((long)L * s), perToken = CpuLoops.Scratch<T>((long)L * (s + 1));
                    var lanes = Lanes<TVector>.Allocate(s, k, residual.StateVectors, out var memory);
                    var vectors = CpuLoops.Scratch<TVector>(2 * k4 + m + 2 * s + s * s + 2 + 3 + k);
                    TVector* projectedLanes = vectors, dz = projectedLanes + k4, depthGrad = dz + k4, preGrad = depthGrad + m;
                    TVector* dots = preGrad + s, gradRes = dots + s, misc = gradRes + s * s, totals = misc + 2;
                    for (int e = 0; e < 3 + k; e++) totals[e] = TOps.Zero;
                    for (long blockIndex = firstBlock; blockIndex < endBlock; blockIndex++)
                    {
                        long first = blockIndex * L;
                        int valid = (int)Math.Min(L, tokens - first);
                        var mask = CpuLoops.LaneMask<T, TVector, TOps>(valid, stage);
                        for (int j = 0; j < L; j++)
                        {
                            rows[j] = H + Math.Min(first + j, tokens - 1) * n;
                            targets[j] = j < valid ? dH + (first + j) * n : spare;
                        }
                        CpuLoops.GatherLanes<T, TVector, TOps>(P, first, tokens, k4, 0, k, projectedLanes, stage);
                        CpuLoops.GatherLanes<T, TVector, TOps>(U, first, tokens, 1, 0, 1, misc, stage);
                        var u = misc[0];
                        Coefficients<T, TVector, TOps>(lanes, projectedLanes, u, s, k, a, b);

                        CpuLoops.GatherLanes<T, TVector, TOps>(gDepth, first, tokens, m, 0, m, depthGrad, stage);
                        CpuLoops.GatherLanes<T, TVector, TOps>(gPre, first, tokens, s, 0, s, preGrad, stage);
                        for (int j = 0; j < L; j++)
                        {
                            T* gj = g + Math.Min(first + j, tokens - 1) * d;
                            for (int i = 0; i < s; i++) readDots[i * L + j] = CpuLoops.Dot<T, TVector, TOps>(rows[j] + i * d, gj, d);
                        }
                        for (int i = 0; i < s; i++)
                        {
                            dots[i] = TOps.Load(readDots + i * L);
                            for (int c = 0; c < s; c++) gradRes[i * s + c] = depthGrad[i * (s + 1) + c];
                        }
                        residual.Backward<T, TVector, TOps>(lanes.Logits, gradRes, dz + 2 * s, lanes.State);

                        var one = TOps.Broadcast(T.One);
                        var half = TOps.Broadcast(T.CreateTruncating(0.5));
                        for (int i = 0; i < s; i++)
                        {
                            var w = lanes.Pre[i];
                            dz[i] = TOps.Multiply(TOps.Multiply(TOps.Add(preGrad[i], dots[i]), w), TOps.Subtract(one, w));
                            var q = lanes.Post[i];
                            dz[s + i] = TOps.Multiply(TOps.Multiply(depthGrad[i * (s + 1) + s], q), TOps.Subtract(one, TOps.Multiply(half, q)));
                        }
                        TVector du = TOps.Zero;
                        for (int e = 0; e < k; e++)
                        {
                            int group = e < s ? 0 : e < 2 * s ? 1 : 2;
                            var dze = TOps.Multiply(dz[e], mask);
                            totals[group] = TOps.MultiplyAdd(dze, lanes.C[e], totals[group]);
                            totals[3 + e] = TOps.Add(totals[3 + e], dze);
                            var dc = TOps.Multiply(TOps.Broadcast(a[group]), dze);
                            du = TOps.MultiplyAdd(dc, projectedLanes[e], du);
                            dz[e] = TOps.Multiply(u, dc);                       // dP
                        }
                        for (int e = k; e < k4; e++) dz[e] = TOps.Zero;
                        // d(x . x) = -du u^3 / (2 N); the stream's gradient takes twice that times x.
                        misc[1] = TOps.Divide(TOps.Subtract(TOps.Zero, TOps.Multiply(du, TOps.Multiply(u, TOps.Multiply(u, u)))), TOps.Broadcast(width));
                        CpuLoops.ScatterLanes<T, TVector, TOps>(dz, k4, dProjected, 0, L, k4, 0, stage);
                        CpuLoops.ScatterLanes<T, TVector, TOps>(lanes.Pre, s, perToken, 0, L, s + 1, 0, stage);
                        CpuLoops.ScatterLanes<T, TVector, TOps>(misc + 1, 1, perToken, 0, L, s + 1, s, stage);

                        for (int j = 0; j < L; j++)
                        {
                            long token = Math.Min(first + j, tokens - 1);
                            T* gj = g + token * d, fromDepthStep = dDepthStep is null ? null : dDepthStep + token * n;
                            T* coefficients = perToken + j * (s + 1);
                            for (int i = 0; i < s; i++)
                                CpuLoops.Combine<T, TVector, TOps>(targets[j] + i * d, coefficients[i], gj, coefficients[s], rows[j] + i * d,
                                    fromDepthStep is null ? null : fromDepthStep + i * d, d);
                        }
                        CpuLoops.AddProjectedBack<T, TVector, TOps>(targets, L, dProjected, phiT, k4, n);
                        CpuLoops.AccumulateOuter<T, TVector, TOps>(dPhiT, dProjected, k4, rows, L, n);
                    }
                    for (int e = 0; e < 3 + k; e++) sums[chunk, e] = double.CreateTruncating(TOps.Sum(totals[e]));
                    CpuLoops.FreeScratch(pointers);
                    CpuLoops.FreeScratch(spare);
                    CpuLoops.FreeScratch(dProjected);
                    CpuLoops.FreeScratch(stage);
                    CpuLoops.FreeScratch(readDots);
                    CpuLoops.FreeScratch(perToken);
                    CpuLoops.FreeScratch(memory);
                    CpuLoops.FreeScratch(vectors);
                });

                T* dPhi = CpuLoops.Pointer<T>(gradPhi), dA = CpuLoops.Pointer<T>(gradAlphas), dB = CpuLoops.Pointer<T>(gradBiases);
                for (int e = 0; e < n; e++)
                    for (int c = 0; c < k; c++)
                    {
                        T total = T.Zero;
                        foreach (var partial in gradPhiT) total += ((T*)partial)[(long)c * n + e];
                        dPhi[(long)e * k + c] = total;
                    }
                for (int e = 0; e < 3 + k; e++)
                {
                    double total = 0;
                    for (int c = 0; c < chunks; c++) total += sums[c, e];
                    if (e < 3) dA[e] = T.CreateTruncating(total);
                    else dB[e - 3] = T.CreateTruncating(total);
                }
            }
            finally
            {
                CpuLoops.FreeScratch(phiT);
                foreach (var partial in gradPhiT) if (partial != 0) CpuLoops.FreeScratch((void*)partial);
            }
        }
    }
}
