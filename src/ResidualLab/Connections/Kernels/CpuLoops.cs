using System.Runtime.CompilerServices;
using System.Numerics;
using System.Runtime.Intrinsics;
using TorchSharp;
using static TorchSharp.torch;

namespace ResidualLab.Connections.Kernels;

/// <summary>
/// The loops shared by the CPU kernels of the n-stream residual: a contiguous CPU tensor's address,
/// per-token work split over torch's threads, and the three vector operations along the width
/// (scale, scaled add, dot product) with Vector256 and a scalar tail.
/// The loops are compiled fully optimised from their first call (AggressiveOptimization): tiered
/// compilation would first run them as unoptimised code, measured 3 to 9 times slower per kernel call.
/// </summary>
internal static class CpuLoops
{
    /// <summary>Whether the kernels take these tensors: all on the CPU, all float32 or all float64.</summary>
    internal static bool Takes(params Tensor[] tensors) =>
        tensors[0].dtype is ScalarType.Float32 or ScalarType.Float64 &&
        tensors.All(t => t.device_type == DeviceType.CPU && t.dtype == tensors[0].dtype);

    internal static unsafe T* Pointer<T>(Tensor t) where T : unmanaged
    {
        fixed (byte* p = t.bytes) return (T*)p;
    }

    /// <summary>How many contiguous ranges <see cref="ForChunks"/> splits <paramref name="tokens"/> into.</summary>
    internal static int Chunks(long tokens) => (int)Math.Min(tokens, Math.Max(1, get_num_threads()));

    /// <summary>Runs <paramref name="body"/>(chunk, first, end) for <see cref="Chunks"/> contiguous token ranges, one per torch thread.</summary>
    internal static void ForChunks(long tokens, Action<int, long, long> body)
    {
        int chunks = Chunks(tokens);
        if (chunks <= 1)
        {
            if (tokens > 0) body(0, 0, tokens);
            return;
        }
        Parallel.For(0, chunks, new ParallelOptions { MaxDegreeOfParallelism = chunks },
            chunk => body(chunk, tokens * chunk / chunks, tokens * (chunk + 1) / chunks));
    }

    /// <summary>Runs <paramref name="body"/> for every token, in contiguous ranges over torch's threads.</summary>
    internal static void ForTokens(long tokens, Action<long> body) =>
        ForChunks(tokens, [MethodImpl(MethodImplOptions.AggressiveOptimization)] (_, first, end) =>
        {
            for (long t = first; t < end; t++) body(t);
        });

    /// <summary>r = a x over <paramref name="n"/> elements.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static unsafe void Scale<T>(T* r, T* x, T a, int n) where T : unmanaged, INumber<T>
    {
        int k = 0;
        var va = Vector256.Create(a);
        for (; k <= n - Vector256<T>.Count; k += Vector256<T>.Count) Vector256.Store(va * Vector256.Load(x + k), r + k);
        for (; k < n; k++) r[k] = a * x[k];
    }

    /// <summary>r += a x over <paramref name="n"/> elements.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static unsafe void AddScaled<T>(T* r, T* x, T a, int n) where T : unmanaged, INumber<T>
    {
        int k = 0;
        var va = Vector256.Create(a);
        for (; k <= n - Vector256<T>.Count; k += Vector256<T>.Count) Vector256.Store(Vector256.Load(r + k) + va * Vector256.Load(x + k), r + k);
        for (; k < n; k++) r[k] += a * x[k];
    }

    /// <summary>sum_k a_k b_k over <paramref name="n"/> elements.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static unsafe T Dot<T>(T* a, T* b, int n) where T : unmanaged, INumber<T>
    {
        int k = 0;
        var acc = Vector256<T>.Zero;
        for (; k <= n - Vector256<T>.Count; k += Vector256<T>.Count) acc += Vector256.Load(a + k) * Vector256.Load(b + k);
        T sum = Vector256.Sum(acc);
        for (; k < n; k++) sum += a[k] * b[k];
        return sum;
    }
}
