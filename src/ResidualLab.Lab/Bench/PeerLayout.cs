using ResidualLab.Native;

namespace ResidualLab.Bench;

/// <summary>
/// A layout of the PyTorch peer: torch's intra-op threads, OpenBLAS's own pool, and the OpenBLAS kernels
/// (<paramref name="CoreType"/>: OPENBLAS_CORETYPE, or null for OpenBLAS's own detection of the CPU). Debian's
/// PyTorch runs both thread pools, so on a few cores the product can oversubscribe them; and Debian's OpenBLAS
/// (0.3.21) does not recognise newer CPUs, falls back to older kernels and can run several times slower than
/// with the newest core type the CPU runs. Which layout is fastest depends on the workload and the CPU, so the
/// bench tries each and keeps the best.
/// </summary>
internal sealed record PeerLayout(int TorchThreads, int BlasThreads, string? CoreType = null)
{
    /// <summary>
    /// Variables the timing child runs without unless its layout sets them: a workplace may set OpenBLAS's core
    /// type and cache size (older OpenBLAS builds miscompute on some CPUs), which pins it to older kernels than
    /// the CPU has. Only the peer's timing process changes them; tests and CI keep the environment as it is.
    /// </summary>
    public static readonly string[] UnsetForTiming = ["OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"];

    /// <summary>
    /// The OpenBLAS kernels worth timing on <paramref name="cpu"/>: OpenBLAS's own choice (null), then the newest
    /// core types the CPU can run: SkylakeX (AVX-512) and Haswell (AVX2).
    /// </summary>
    public static IReadOnlyList<string?> CoreTypes(CpuIdentity cpu) =>
        [null, .. cpu.Avx512 ? new[] { "SkylakeX" } : [], .. cpu.Avx2 ? new[] { "Haswell" } : []];

    /// <summary>Torch threads <paramref name="cores"/> and 1, each with OpenBLAS at 1 and at <paramref name="cores"/> threads,
    /// each with every core type of <see cref="CoreTypes"/>.</summary>
    public static IReadOnlyList<PeerLayout> Candidates(int cores, CpuIdentity cpu) =>
        (cores == 1 ? new[] { 1 } : new[] { cores, 1 })
            .SelectMany(t => (cores == 1 ? new[] { 1 } : new[] { 1, cores })
                .SelectMany(b => CoreTypes(cpu).Select(core => new PeerLayout(t, b, core))))
            .ToList();

    /// <summary>The child's environment changes: OpenBLAS's thread count and core type set, the other overrides removed (null).</summary>
    public IReadOnlyDictionary<string, string?> Environment =>
        UnsetForTiming.ToDictionary(name => name, _ => (string?)null)
            .Append(new("OPENBLAS_NUM_THREADS", BlasThreads.ToString()))
            .Concat(CoreType is null ? [] : [new("OPENBLAS_CORETYPE", CoreType)])
            .GroupBy(kv => kv.Key).ToDictionary(g => g.Key, g => g.Last().Value);

    /// <summary>"torch 2 x OpenBLAS 1 threads, OpenBLAS SkylakeX kernels" (or "OpenBLAS's own kernel choice").</summary>
    public override string ToString() =>
        $"torch {TorchThreads} x OpenBLAS {BlasThreads} threads, {(CoreType is null ? "OpenBLAS's own kernel choice" : $"OpenBLAS {CoreType} kernels")}";
}
