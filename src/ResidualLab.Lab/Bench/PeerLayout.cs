namespace ResidualLab.Bench;

/// <summary>
/// A thread layout of the PyTorch peer: torch's intra-op threads and OpenBLAS's own pool. Debian's
/// PyTorch runs both pools, so on a few cores the product can oversubscribe them; which layout is
/// fastest depends on the workload and the CPU, so the bench tries each and keeps the best.
/// </summary>
internal sealed record PeerLayout(int TorchThreads, int BlasThreads)
{
    /// <summary>
    /// Variables the timing child runs without: a workplace may set OpenBLAS's core type and cache size
    /// (older OpenBLAS builds miscompute on some CPUs), which pins it to older kernels than the CPU has.
    /// Only the peer's timing process drops them; tests and CI keep the environment as it is.
    /// </summary>
    public static readonly string[] UnsetForTiming = ["OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"];

    /// <summary>Torch threads 1 and <paramref name="cores"/>, each with OpenBLAS at 1 and at <paramref name="cores"/> threads.</summary>
    public static IReadOnlyList<PeerLayout> Candidates(int cores) =>
        (cores == 1 ? new[] { 1 } : new[] { cores, 1 })
            .SelectMany(t => (cores == 1 ? new[] { 1 } : new[] { 1, cores }).Select(b => new PeerLayout(t, b)))
            .ToList();

    /// <summary>The child's environment changes: OpenBLAS's thread count set, the core-type overrides removed (null).</summary>
    public IReadOnlyDictionary<string, string?> Environment =>
        UnsetForTiming.ToDictionary(name => name, _ => (string?)null)
            .Append(new("OPENBLAS_NUM_THREADS", BlasThreads.ToString()))
            .ToDictionary(kv => kv.Key, kv => kv.Value);

    public override string ToString() => $"torch {TorchThreads} x OpenBLAS {BlasThreads} threads";
}
