namespace ResidualLab.Tests.Training;

/// <summary>
/// Tests that change libtorch's process-wide state (the intra-op thread count, oneDNN on or off) run alone: while they
/// run, a test in parallel would train with their threads and kernels, which on some CPUs (oneDNN convolutions on AMD
/// family 26 at 2 threads) gives non-finite gradients that are not its own.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class GlobalTorchStateCollection
{
    public const string Name = "global torch state (not in parallel)";
}
