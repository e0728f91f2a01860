using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using TorchSharp;
using static TorchSharp.torch;

namespace ResidualLab.Connections.Kernels;

/// <summary>A kernel body compiled once per element type and vector width (see <see cref="CpuLoops.Dispatch"/>).</summary>
internal interface IKernelBody
{
    void Run<T, TVector, TOps>()
        where T : unmanaged, IFloatingPointIeee754<T>
        where TVector : unmanaged
        where TOps : struct, IVectorOps<TVector, T>;
}

/// <summary>
/// What the CPU kernels of the residual streams share: which tensors they take, a CPU tensor's address, work split
/// over tokens, per-thread scratch memory, the dispatch to float32/float64 and to the CPU's vector width, and the
/// vector loops along the width: scaled copies and adds, dot products, small mixes of rows, and the three products of
/// a block of rows with a small weight matrix that a per-token projection and its backward need (rows times the
/// weights, their transpose back into the rows, and the weights' gradient accumulated over rows).
/// The loops are compiled fully optimised from their first call (AggressiveOptimization): tiered compilation would
/// first run them as unoptimised code, measured 3 to 9 times slower per kernel call.
/// </summary>
internal static unsafe class CpuLoops
{
    /// <summary>Whether the kernels take these tensors: all on the CPU, all float32 or all float64.</summary>
    internal static bool Takes(params Tensor[] tensors) =>
        tensors[0].dtype is ScalarType.Float32 or ScalarType.Float64 &&
        tensors.All(t => t.device_type == DeviceType.CPU && t.dtype == tensors[0].dtype);

    internal static T* Pointer<T>(Tensor t) where T : unmanaged
    {
        fixed (byte* p = t.bytes) return (T*)p;
    }

    /// <summary>
    /// Whether <see cref="Dispatch"/> runs the kernels on Vector512: where the CPU accelerates it (AVX-512), else on
    /// Vector256. Tests turn it off to run the Vector256 kernels on an AVX-512 CPU too.
    /// </summary>
    internal static bool Wide { get; set; } = Vector512.IsHardwareAccelerated;

    /// <summary>
    /// Runs <paramref name="body"/> compiled for the tensors' element type (float32 or float64) and the widest vectors the
    /// CPU runs natively: Vector512 where AVX-512 is accelerated, Vector256 otherwise (<see cref="Wide"/>).
    /// </summary>
    internal static void Dispatch<TBody>(ScalarType dtype, TBody body) where TBody : struct, IKernelBody
    {
        bool wide = Wide;
        if (dtype == ScalarType.Float64)
        {
            if (wide) body.Run<double, Vector512<double>, Vector512Ops<double>>();
            else body.Run<double, Vector256<double>, Vector256Ops<double>>();
        }
        else if (dtype == ScalarType.Float32)
        {
            if (wide) body.Run<float, Vector512<float>, Vector512Ops<float>>();
            else body.Run<float, Vector256<float>, Vector256Ops<float>>();
        }
        else throw new ArgumentException($"the CPU kernels take float32 or float64, got {dtype}");
    }

    /// <summary>How many contiguous ranges <see cref="ForChunks"/> splits <paramref name="items"/> into.</summary>
    internal static int Chunks(long items) => (int)Math.Min(items, Math.Max(1, get_num_threads()));

    /// <summary>
    /// Runs <paramref name="body"/>(chunk, first, end) for <see cref="Chunks"/> contiguous ranges of items, one per torch
    /// thread: on libtorch's OpenMP team where this thread can drive it (<see cref="OpenMpTeam"/>), else on .NET's thread pool.
    /// </summary>
    internal static void ForChunks(long items, Action<int, long, long> body)
    {
        int chunks = Chunks(items);
        if (chunks <= 1)
        {
            if (items > 0) body(0, 0, items);
            return;
        }
        void Chunk(int chunk) => body(chunk, items * chunk / chunks, items * (chunk + 1) / chunks);
        if (!OpenMpTeam.TryRun(chunks, Chunk)) Parallel.For(0, chunks, new ParallelOptions { MaxDegreeOfParallelism = chunks }, Chunk);
    }

    /// <summary>Uninitialised memory aligned to 64 bytes for one chunk of a kernel; <see cref="FreeScratch"/> returns it.</summary>
    internal static T* Scratch<T>(long count) where T : unmanaged =>
        (T*)NativeMemory.AlignedAlloc((nuint)(Math.Max(1, count) * sizeof(T)), 64);

    internal static void FreeScratch(void* memory) => NativeMemory.AlignedFree(memory);

    /// <summary>
    /// The per-token values of a block of tokens into vectors, one token per lane: lanes[e], lane j, is
    /// values[row_j stride + offset + e] for e &lt; <paramref name="elements"/>, row_j = min(first + j, rows - 1) (the last
    /// block is padded with its last token). <paramref name="stage"/> holds elements x lanes values.
    /// </summary>
    internal static void GatherLanes<T, TVector, TOps>(T* values, long first, long rows, long stride, int offset, int elements, TVector* lanes, T* stage)
        where T : unmanaged, IFloatingPointIeee754<T> where TVector : unmanaged where TOps : struct, IVectorOps<TVector, T>
    {
        int count = TOps.Count;
        for (int j = 0; j < count; j++)
        {
            T* row = values + Math.Min(first + j, rows - 1) * stride + offset;
            for (int e = 0; e < elements; e++) stage[e * count + j] = row[e];
        }
        for (int e = 0; e < elements; e++) lanes[e] = TOps.Load(stage + e * count);
    }

    /// <summary>The inverse of <see cref="GatherLanes"/> for the first <paramref name="valid"/> lanes.</summary>
    internal static void ScatterLanes<T, TVector, TOps>(TVector* lanes, int elements, T* values, long first, int valid, long stride, int offset, T* stage)
        where T : unmanaged, IFloatingPointIeee754<T> where TVector : unmanaged where TOps : struct, IVectorOps<TVector, T>
    {
        int count = TOps.Count;
        for (int e = 0; e < elements; e++) TOps.Store(lanes[e], stage + e * count);
        for (int j = 0; j < valid; j++)
        {
            T* row = values + (first + j) * stride + offset;
            for (int e = 0; e < elements; e++) row[e] = stage[e * count + j];
        }
    }

    /// <summary>A vector with 1 in the first <paramref name="valid"/> lanes and 0 in the rest (the padding of a last block).</summary>
    internal static TVector LaneMask<T, TVector, TOps>(int valid, T* stage)
        where T : unmanaged, IFloatingPointIeee754<T> where TVector : unmanaged where TOps : struct, IVectorOps<TVector, T>
    {
        for (int j = 0; j < TOps.Count; j++) stage[j] = j < valid ? T.One : T.Zero;
        return TOps.Load(stage);
    }

    /// <summary><paramref name="count"/> rounded up to a multiple of 4 (the row products take weights four at a time).</summary>
    internal static int RoundUpToFour(long count) => (int)((count + 3) / 4 * 4);

    /// <summary>1 / (1 + exp(-z)), lane-wise.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static TVector Sigmoid<T, TVector, TOps>(TVector z)
        where T : unmanaged, IFloatingPointIeee754<T> where TVector : unmanaged where TOps : struct, IVectorOps<TVector, T>
    {
        var one = TOps.Broadcast(T.One);
        return TOps.Divide(one, TOps.Add(one, TOps.Exp(TOps.Subtract(TOps.Zero, z))));
    }

    /// <summary>tanh z = 1 - 2 / (exp(2 z) + 1), lane-wise.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static TVector Tanh<T, TVector, TOps>(TVector z)
        where T : unmanaged, IFloatingPointIeee754<T> where TVector : unmanaged where TOps : struct, IVectorOps<TVector, T>
    {
        var one = TOps.Broadcast(T.One);
        var two = TOps.Add(one, one);
        return TOps.Subtract(one, TOps.Divide(two, TOps.Add(TOps.Exp(TOps.Multiply(two, z)), one)));
    }

    /// <summary>
    /// LayerNorm's affine folded into the projection W [c, K] that follows it, for each of <paramref name="groups"/>
    /// slices of c in gamma and beta: gamma_g W transposed into K4 rows of c (padding rows zero) [groups, K4, c], and
    /// beta_g . W_k in <paramref name="offsets"/> [groups, K]; so N W = r ((x - mu) . (gamma W)) + beta . W.
    /// <see cref="FreeScratch"/> returns the memory.
    /// </summary>
    internal static T* FoldLayerNorm<T>(Tensor projection, Tensor gamma, Tensor beta, int groups, out T[] offsets) where T : unmanaged, IFloatingPointIeee754<T>
    {
        int c = (int)projection.shape[0], k = (int)projection.shape[1], padded = RoundUpToFour(k);
        T* W = Pointer<T>(projection), g = Pointer<T>(gamma), b = Pointer<T>(beta);
        T* result = Scratch<T>((long)groups * padded * c);
        offsets = new T[groups * k];
        for (int f = 0; f < groups; f++)
            for (int q = 0; q < padded; q++)
                for (int e = 0; e < c; e++)
                {
                    result[((long)f * padded + q) * c + e] = q < k ? g[f * c + e] * W[e * k + q] : T.Zero;
                    if (q < k) offsets[f * k + q] += b[f * c + e] * W[e * k + q];
                }
        return result;
    }

    /// <summary>1 / sqrt(mean of x^2 over <paramref name="n"/> elements + eps) (RMSNorm's scale).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static T InverseRms<T, TVector, TOps>(T* x, int n, T eps)
        where T : unmanaged, IFloatingPointIeee754<T> where TVector : unmanaged where TOps : struct, IVectorOps<TVector, T> =>
        T.One / T.Sqrt(Dot<T, TVector, TOps>(x, x, n) / T.CreateTruncating(n) + eps);

    /// <summary>centred = x - mean over <paramref name="n"/> elements; returns the mean and LayerNorm's 1 / sqrt(variance + eps) (the variance biased).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static (T Mean, T InverseStd) Centre<T, TVector, TOps>(T* x, T* centred, int n, T eps)
        where T : unmanaged, IFloatingPointIeee754<T> where TVector : unmanaged where TOps : struct, IVectorOps<TVector, T>
    {
        T width = T.CreateTruncating(n);
        T mean = Sum<T, TVector, TOps>(x, n) / width;
        ScaleAndShift<T, TVector, TOps>(centred, x, T.One, -mean, n);
        T variance = Dot<T, TVector, TOps>(centred, centred, n) / width;
        return (mean, T.One / T.Sqrt(variance + eps));
    }

    /// <summary>sum_k a_k b_k over <paramref name="n"/> elements (four independent sums, so that the adds overlap).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static T Dot<T, TVector, TOps>(T* a, T* b, int n)
        where T : unmanaged, IFloatingPointIeee754<T> where TVector : unmanaged where TOps : struct, IVectorOps<TVector, T>
    {
        int w = TOps.Count, k = 0;
        TVector acc0 = TOps.Zero, acc1 = TOps.Zero, acc2 = TOps.Zero, acc3 = TOps.Zero;
        for (; k <= n - 4 * w; k += 4 * w)
        {
            acc0 = TOps.MultiplyAdd(TOps.Load(a + k), TOps.Load(b + k), acc0);
            acc1 = TOps.MultiplyAdd(TOps.Load(a + k + w), TOps.Load(b + k + w), acc1);
            acc2 = TOps.MultiplyAdd(TOps.Load(a + k + 2 * w), TOps.Load(b + k + 2 * w), acc2);
            acc3 = TOps.MultiplyAdd(TOps.Load(a + k + 3 * w), TOps.Load(b + k + 3 * w), acc3);
        }
        for (; k <= n - w; k += w) acc0 = TOps.MultiplyAdd(TOps.Load(a + k), TOps.Load(b + k), acc0);
        T sum = TOps.Sum(TOps.Add(TOps.Add(acc0, acc1), TOps.Add(acc2, acc3)));
        for (; k < n; k++) sum += a[k] * b[k];
        return sum;
    }

    /// <summary>
    /// result[j bCount + i] = a_j . b_i for <paramref name="aCount"/> rows a and <paramref name="bCount"/> rows b of
    /// <paramref name="n"/> elements: each a_j is loaded once for four b rows at a time, eight independent sums.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void Gram<T, TVector, TOps>(T** a, int aCount, T** b, int bCount, int n, T* result)
        where T : unmanaged, IFloatingPointIeee754<T> where TVector : unmanaged where TOps : struct, IVectorOps<TVector, T>
    {
        int w = TOps.Count;
        for (int j = 0; j < aCount; j++)
        {
            T* x = a[j];
            int i = 0;
            for (; i <= bCount - 4; i += 4)
            {
                T* y0 = b[i], y1 = b[i + 1], y2 = b[i + 2], y3 = b[i + 3];
                TVector s0 = TOps.Zero, s1 = TOps.Zero, s2 = TOps.Zero, s3 = TOps.Zero;
                TVector t0 = TOps.Zero, t1 = TOps.Zero, t2 = TOps.Zero, t3 = TOps.Zero;
                int k = 0;
                for (; k <= n - 2 * w; k += 2 * w)
                {
                    TVector u = TOps.Load(x + k), v = TOps.Load(x + k + w);
                    s0 = TOps.MultiplyAdd(u, TOps.Load(y0 + k), s0); t0 = TOps.MultiplyAdd(v, TOps.Load(y0 + k + w), t0);
                    s1 = TOps.MultiplyAdd(u, TOps.Load(y1 + k), s1); t1 = TOps.MultiplyAdd(v, TOps.Load(y1 + k + w), t1);
                    s2 = TOps.MultiplyAdd(u, TOps.Load(y2 + k), s2); t2 = TOps.MultiplyAdd(v, TOps.Load(y2 + k + w), t2);
                    s3 = TOps.MultiplyAdd(u, TOps.Load(y3 + k), s3); t3 = TOps.MultiplyAdd(v, TOps.Load(y3 + k + w), t3);
                }
                for (; k <= n - w; k += w)
                {
                    TVector u = TOps.Load(x + k);
                    s0 = TOps.MultiplyAdd(u, TOps.Load(y0 + k), s0);
                    s1 = TOps.MultiplyAdd(u, TOps.Load(y1 + k), s1);
                    s2 = TOps.MultiplyAdd(u, TOps.Load(y2 + k), s2);
                    s3 = TOps.MultiplyAdd(u, TOps.Load(y3 + k), s3);
                }
                T r0 = TOps.Sum(TOps.Add(s0, t0)), r1 = TOps.Sum(TOps.Add(s1, t1)), r2 = TOps.Sum(TOps.Add(s2, t2)), r3 = TOps.Sum(TOps.Add(s3, t3));
                for (; k < n; k++)
                {
                    r0 += x[k] * y0[k]; r1 += x[k] * y1[k]; r2 += x[k] * y2[k]; r3 += x[k] * y3[k];
                }
                T* row = result + j * bCount + i;
                row[0] = r0; row[1] = r1; row[2] = r2; row[3] = r3;
            }
            for (; i < bCount; i++) result[j * bCount + i] = Dot<T, TVector, TOps>(x, b[i], n);
        }
    }

    /// <summary>r = a x over <paramref name="n"/> elements.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void Scale<T, TVector, TOps>(T* r, T* x, T a, int n)
        where T : unmanaged, IFloatingPointIeee754<T> where TVector : unmanaged where TOps : struct, IVectorOps<TVector, T>
    {
        int w = TOps.Count, k = 0;
        var va = TOps.Broadcast(a);
        for (; k <= n - w; k += w) TOps.Store(TOps.Multiply(va, TOps.Load(x + k)), r + k);
        for (; k < n; k++) r[k] = a * x[k];
    }

    /// <summary>r += a x over <paramref name="n"/> elements.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void AddScaled<T, TVector, TOps>(T* r, T* x, T a, int n)
        where T : unmanaged, IFloatingPointIeee754<T> where TVector : unmanaged where TOps : struct, IVectorOps<TVector, T>
    {
        int w = TOps.Count, k = 0;
        var va = TOps.Broadcast(a);
        for (; k <= n - w; k += w) TOps.Store(TOps.MultiplyAdd(va, TOps.Load(x + k), TOps.Load(r + k)), r + k);
        for (; k < n; k++) r[k] += a * x[k];
    }

    /// <summary>r = a x + b y (+ <paramref name="add"/> where given) over <paramref name="n"/> elements.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void Combine<T, TVector, TOps>(T* r, T a, T* x, T b, T* y, T* add, int n)
        where T : unmanaged, IFloatingPointIeee754<T> where TVector : unmanaged where TOps : struct, IVectorOps<TVector, T>
    {
        int w = TOps.Count, k = 0;
        TVector va = TOps.Broadcast(a), vb = TOps.Broadcast(b);
        if (add is null)
        {
            for (; k <= n - w; k += w) TOps.Store(TOps.MultiplyAdd(va, TOps.Load(x + k), TOps.Multiply(vb, TOps.Load(y + k))), r + k);
            for (; k < n; k++) r[k] = a * x[k] + b * y[k];
            return;
        }
        for (; k <= n - w; k += w)
            TOps.Store(TOps.MultiplyAdd(va, TOps.Load(x + k), TOps.MultiplyAdd(vb, TOps.Load(y + k), TOps.Load(add + k))), r + k);
        for (; k < n; k++) r[k] = a * x[k] + b * y[k] + add[k];
    }

    /// <summary>r = a x + shift over <paramref name="n"/> elements.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void ScaleAndShift<T, TVector, TOps>(T* r, T* x, T a, T shift, int n)
        where T : unmanaged, IFloatingPointIeee754<T> where TVector : unmanaged where TOps : struct, IVectorOps<TVector, T>
    {
        int w = TOps.Count, k = 0;
        TVector va = TOps.Broadcast(a), vs = TOps.Broadcast(shift);
        for (; k <= n - w; k += w) TOps.Store(TOps.MultiplyAdd(va, TOps.Load(x + k), vs), r + k);
        for (; k < n; k++) r[k] = a * x[k] + shift;
    }

    /// <summary>The sum of <paramref name="n"/> elements.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static T Sum<T, TVector, TOps>(T* x, int n)
        where T : unmanaged, IFloatingPointIeee754<T> where TVector : unmanaged where TOps : struct, IVectorOps<TVector, T>
    {
        int w = TOps.Count, k = 0;
        TVector acc = TOps.Zero;
        for (; k <= n - w; k += w) acc = TOps.Add(acc, TOps.Load(x + k));
        T sum = TOps.Sum(acc);
        for (; k < n; k++) sum += x[k];
        return sum;
    }

    /// <summary>
    /// outputs_j = sum_i weights[j stride + i] inputs_i for <paramref name="outputCount"/> rows of <paramref name="n"/>
    /// elements: each output row written once, its sums kept in registers, four vectors at a time so that the
    /// multiply-adds of one row overlap.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void Mix<T, TVector, TOps>(T** outputs, int outputCount, T** inputs, int inputCount, T* weights, int stride, int n)
        where T : unmanaged, IFloatingPointIeee754<T> where TVector : unmanaged where TOps : struct, IVectorOps<TVector, T>
    {
        int w = TOps.Count;
        for (int j = 0; j < outputCount; j++)
        {
            T* row = weights + j * stride, output = outputs[j];
            int k = 0;
            for (; k <= n - 4 * w; k += 4 * w)
            {
                TVector c = TOps.Broadcast(row[0]);
                T* x = inputs[0] + k;
                TVector a0 = TOps.Multiply(c, TOps.Load(x)), a1 = TOps.Multiply(c, TOps.Load(x + w));
                TVector a2 = TOps.Multiply(c, TOps.Load(x + 2 * w)), a3 = TOps.Multiply(c, TOps.Load(x + 3 * w));
                for (int i = 1; i < inputCount; i++)
                {
                    c = TOps.Broadcast(row[i]);
                    x = inputs[i] + k;
                    a0 = TOps.MultiplyAdd(c, TOps.Load(x), a0);
                    a1 = TOps.MultiplyAdd(c, TOps.Load(x + w), a1);
                    a2 = TOps.MultiplyAdd(c, TOps.Load(x + 2 * w), a2);
                    a3 = TOps.MultiplyAdd(c, TOps.Load(x + 3 * w), a3);
                }
                TOps.Store(a0, output + k); TOps.Store(a1, output + k + w);
                TOps.Store(a2, output + k + 2 * w); TOps.Store(a3, output + k + 3 * w);
            }
            for (; k <= n - w; k += w)
            {
                var acc = TOps.Multiply(TOps.Broadcast(row[0]), TOps.Load(inputs[0] + k));
                for (int i = 1; i < inputCount; i++) acc = TOps.MultiplyAdd(TOps.Broadcast(row[i]), TOps.Load(inputs[i] + k), acc);
                TOps.Store(acc, output + k);
            }
            for (; k < n; k++)
            {
                T sum = row[0] * inputs[0][k];
                for (int i = 1; i < inputCount; i++) sum += row[i] * inputs[i][k];
                output[k] = sum;
            }
        }
    }

    /// <summary>
    /// result[r outputs + k] = rows_r . weights_k: <paramref name="rowCount"/> rows (a multiple of 4) of <paramref name="n"/>
    /// elements times <paramref name="outputs"/> weight rows (a multiple of 4), stored one after another, each n long.
    /// Four rows by four weight rows at a time, sixteen sums in registers.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void Project<T, TVector, TOps>(T** rows, int rowCount, T* weights, int outputs, int n, T* result)
        where T : unmanaged, IFloatingPointIeee754<T> where TVector : unmanaged where TOps : struct, IVectorOps<TVector, T>
    {
        int w = TOps.Count;
        for (int r = 0; r < rowCount; r += 4)
        {
            T* x0 = rows[r], x1 = rows[r + 1], x2 = rows[r + 2], x3 = rows[r + 3];
            for (int k = 0; k < outputs; k += 4)
            {
                T* w0 = weights + (long)k * n, w1 = w0 + n, w2 = w1 + n, w3 = w2 + n;
                TVector a00 = TOps.Zero, a01 = TOps.Zero, a02 = TOps.Zero, a03 = TOps.Zero;
                TVector a10 = TOps.Zero, a11 = TOps.Zero, a12 = TOps.Zero, a13 = TOps.Zero;
                TVector a20 = TOps.Zero, a21 = TOps.Zero, a22 = TOps.Zero, a23 = TOps.Zero;
                TVector a30 = TOps.Zero, a31 = TOps.Zero, a32 = TOps.Zero, a33 = TOps.Zero;
                int e = 0;
                for (; e <= n - w; e += w)
                {
                    TVector v0 = TOps.Load(x0 + e), v1 = TOps.Load(x1 + e), v2 = TOps.Load(x2 + e), v3 = TOps.Load(x3 + e);
                    TVector c = TOps.Load(w0 + e);
                    a00 = TOps.MultiplyAdd(v0, c, a00); a10 = TOps.MultiplyAdd(v1, c, a10); a20 = TOps.MultiplyAdd(v2, c, a20); a30 = TOps.MultiplyAdd(v3, c, a30);
                    c = TOps.Load(w1 + e);
                    a01 = TOps.MultiplyAdd(v0, c, a01); a11 = TOps.MultiplyAdd(v1, c, a11); a21 = TOps.MultiplyAdd(v2, c, a21); a31 = TOps.MultiplyAdd(v3, c, a31);
                    c = TOps.Load(w2 + e);
                    a02 = TOps.MultiplyAdd(v0, c, a02); a12 = TOps.MultiplyAdd(v1, c, a12); a22 = TOps.MultiplyAdd(v2, c, a22); a32 = TOps.MultiplyAdd(v3, c, a32);
                    c = TOps.Load(w3 + e);
                    a03 = TOps.MultiplyAdd(v0, c, a03); a13 = TOps.MultiplyAdd(v1, c, a13); a23 = TOps.MultiplyAdd(v2, c, a23); a33 = TOps.MultiplyAdd(v3, c, a33);
                }
                T* o = result + (long)r * outputs + k;
                o[0] = TOps.Sum(a00); o[1] = TOps.Sum(a01); o[2] = TOps.Sum(a02); o[3] = TOps.Sum(a03);
                o += outputs;
                o[0] = TOps.Sum(a10); o[1] = TOps.Sum(a11); o[2] = TOps.Sum(a12); o[3] = TOps.Sum(a13);
                o += outputs;
                o[0] = TOps.Sum(a20); o[1] = TOps.Sum(a21); o[2] = TOps.Sum(a22); o[3] = TOps.Sum(a23);
                o += outputs;
                o[0] = TOps.Sum(a30); o[1] = TOps.Sum(a31); o[2] = TOps.Sum(a32); o[3] = TOps.Sum(a33);
                for (; e < n; e++)
                    for (int i = 0; i < 4; i++)
                        for (int j = 0; j < 4; j++)
                            result[(long)(r + i) * outputs + k + j] += rows[r + i][e] * weights[(long)(k + j) * n + e];
            }
        }
    }

    /// <summary>
    /// targets_r += sum_k coefficients[r outputs + k] weights_k: the transpose of <see cref="Project"/>, adding into
    /// <paramref name="rowCount"/> rows (a multiple of 4) of <paramref name="n"/> elements. Four rows by two vectors at a time.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void AddProjectedBack<T, TVector, TOps>(T** targets, int rowCount, T* coefficients, T* weights, int outputs, int n)
        where T : unmanaged, IFloatingPointIeee754<T> where TVector : unmanaged where TOps : struct, IVectorOps<TVector, T>
    {
        int w = TOps.Count;
        for (int r = 0; r < rowCount; r += 4)
        {
            T* y0 = targets[r], y1 = targets[r + 1], y2 = targets[r + 2], y3 = targets[r + 3];
            T* c0 = coefficients + (long)r * outputs, c1 = c0 + outputs, c2 = c1 + outputs, c3 = c2 + outputs;
            int e = 0;
            for (; e <= n - 2 * w; e += 2 * w)
            {
                TVector t00 = TOps.Load(y0 + e), t01 = TOps.Load(y0 + e + w), t10 = TOps.Load(y1 + e), t11 = TOps.Load(y1 + e + w);
                TVector t20 = TOps.Load(y2 + e), t21 = TOps.Load(y2 + e + w), t30 = TOps.Load(y3 + e), t31 = TOps.Load(y3 + e + w);
                T* wk = weights + e;
                for (int k = 0; k < outputs; k++, wk += n)
                {
                    TVector u0 = TOps.Load(wk), u1 = TOps.Load(wk + w);
                    TVector b = TOps.Broadcast(c0[k]);
                    t00 = TOps.MultiplyAdd(b, u0, t00); t01 = TOps.MultiplyAdd(b, u1, t01);
                    b = TOps.Broadcast(c1[k]);
                    t10 = TOps.MultiplyAdd(b, u0, t10); t11 = TOps.MultiplyAdd(b, u1, t11);
                    b = TOps.Broadcast(c2[k]);
                    t20 = TOps.MultiplyAdd(b, u0, t20); t21 = TOps.MultiplyAdd(b, u1, t21);
                    b = TOps.Broadcast(c3[k]);
                    t30 = TOps.MultiplyAdd(b, u0, t30); t31 = TOps.MultiplyAdd(b, u1, t31);
                }
                TOps.Store(t00, y0 + e); TOps.Store(t01, y0 + e + w); TOps.Store(t10, y1 + e); TOps.Store(t11, y1 + e + w);
                TOps.Store(t20, y2 + e); TOps.Store(t21, y2 + e + w); TOps.Store(t30, y3 + e); TOps.Store(t31, y3 + e + w);
            }
            for (; e <= n - w; e += w)
            {
                TVector t0 = TOps.Load(y0 + e), t1 = TOps.Load(y1 + e), t2 = TOps.Load(y2 + e), t3 = TOps.Load(y3 + e);
                T* wk = weights + e;
                for (int k = 0; k < outputs; k++, wk += n)
                {
                    TVector u = TOps.Load(wk);
                    t0 = TOps.MultiplyAdd(TOps.Broadcast(c0[k]), u, t0);
                    t1 = TOps.MultiplyAdd(TOps.Broadcast(c1[k]), u, t1);
                    t2 = TOps.MultiplyAdd(TOps.Broadcast(c2[k]), u, t2);
                    t3 = TOps.MultiplyAdd(TOps.Broadcast(c3[k]), u, t3);
                }
                TOps.Store(t0, y0 + e); TOps.Store(t1, y1 + e); TOps.Store(t2, y2 + e); TOps.Store(t3, y3 + e);
            }
            for (; e < n; e++)
                for (int k = 0; k < outputs; k++)
                {
                    T u = weights[(long)k * n + e];
                    y0[e] += c0[k] * u; y1[e] += c1[k] * u; y2[e] += c2[k] * u; y3[e] += c3[k] * u;
                }
        }
    }

    /// <summary>
    /// accumulator_k += sum_r coefficients[r outputs + k] rows_r: the weights' gradient of <see cref="Project"/>, summed
    /// over <paramref name="rowCount"/> rows into <paramref name="outputs"/> (a multiple of 4) accumulator rows of
    /// <paramref name="n"/> elements stored one after another. Four accumulator rows by two vectors at a time.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void AccumulateOuter<T, TVector, TOps>(T* accumulator, T* coefficients, int outputs, T** rows, int rowCount, int n)
        where T : unmanaged, IFloatingPointIeee754<T> where TVector : unmanaged where TOps : struct, IVectorOps<TVector, T>
    {
        int w = TOps.Count;
        for (int k = 0; k < outputs; k += 4)
        {
            T* a0 = accumulator + (long)k * n, a1 = a0 + n, a2 = a1 + n, a3 = a2 + n;
            int e = 0;
            for (; e <= n - 2 * w; e += 2 * w)
            {
                TVector s00 = TOps.Load(a0 + e), s01 = TOps.Load(a0 + e + w), s10 = TOps.Load(a1 + e), s11 = TOps.Load(a1 + e + w);
                TVector s20 = TOps.Load(a2 + e), s21 = TOps.Load(a2 + e + w), s30 = TOps.Load(a3 + e), s31 = TOps.Load(a3 + e + w);
                T* c = coefficients + k;
                for (int r = 0; r < rowCount; r++, c += outputs)
                {
                    TVector x0 = TOps.Load(rows[r] + e), x1 = TOps.Load(rows[r] + e + w);
                    TVector b = TOps.Broadcast(c[0]);
                    s00 = TOps.MultiplyAdd(b, x0, s00); s01 = TOps.MultiplyAdd(b, x1, s01);
                    b = TOps.Broadcast(c[1]);
                    s10 = TOps.MultiplyAdd(b, x0, s10); s11 = TOps.MultiplyAdd(b, x1, s11);
                    b = TOps.Broadcast(c[2]);
                    s20 = TOps.MultiplyAdd(b, x0, s20); s21 = TOps.MultiplyAdd(b, x1, s21);
                    b = TOps.Broadcast(c[3]);
                    s30 = TOps.MultiplyAdd(b, x0, s30); s31 = TOps.MultiplyAdd(b, x1, s31);
                }
                TOps.Store(s00, a0 + e); TOps.Store(s01, a0 + e + w); TOps.Store(s10, a1 + e); TOps.Store(s11, a1 + e + w);
                TOps.Store(s20, a2 + e); TOps.Store(s21, a2 + e + w); TOps.Store(s30, a3 + e); TOps.Store(s31, a3 + e + w);
            }
            for (; e <= n - w; e += w)
            {
                TVector s0 = TOps.Load(a0 + e), s1 = TOps.Load(a1 + e), s2 = TOps.Load(a2 + e), s3 = TOps.Load(a3 + e);
                T* c = coefficients + k;
                for (int r = 0; r < rowCount; r++, c += outputs)
                {
                    TVector x = TOps.Load(rows[r] + e);
                    s0 = TOps.MultiplyAdd(TOps.Broadcast(c[0]), x, s0);
                    s1 = TOps.MultiplyAdd(TOps.Broadcast(c[1]), x, s1);
                    s2 = TOps.MultiplyAdd(TOps.Broadcast(c[2]), x, s2);
                    s3 = TOps.MultiplyAdd(TOps.Broadcast(c[3]), x, s3);
                }
                TOps.Store(s0, a0 + e); TOps.Store(s1, a1 + e); TOps.Store(s2, a2 + e); TOps.Store(s3, a3 + e);
            }
            for (; e < n; e++)
            {
                T s0 = a0[e], s1 = a1[e], s2 = a2[e], s3 = a3[e];
                T* c = coefficients + k;
                for (int r = 0; r < rowCount; r++, c += outputs)
                {
                    T x = rows[r][e];
                    s0 += c[0] * x; s1 += c[1] * x; s2 += c[2] * x; s3 += c[3] * x;
                }
                a0[e] = s0; a1[e] = s1; a2[e] = s2; a3[e] = s3;
            }
        }
    }
}
