using ResidualLab.Config;

namespace ResidualLab.Native;

/// <summary>
/// Whether a run lets libtorch use its oneDNN CPU kernels, and why: train.onednn = on or off decides; auto
/// turns oneDNN on where <see cref="OneDnnProbe"/> finds its convolutions sound at the run's thread count, and
/// off where it does not. The choice is the same for every model family (the switch is process-wide: runs of
/// different families in one process must not flip it under each other); the vision models' convolutions are
/// what it guards, and where they are sound oneDNN is their faster path (libtorch's own convolutions, im2col
/// and a matrix multiply, are several times slower on every CPU measured: README, performance).
/// </summary>
internal sealed record OneDnnChoice(bool Enabled, string Reason)
{
    /// <param name="threads">The run's intra-op thread count, at which the probe checks.</param>
    public static OneDnnChoice For(OneDnnSetting setting, int threads)
    {
        if (setting == OneDnnSetting.On) return new(true, "train.onednn = on");
        if (setting == OneDnnSetting.Off) return new(false, "train.onednn = off");
        var verdict = OneDnnProbe.At(threads);
        return new(verdict.Sound, $"train.onednn = auto; its convolutions {verdict.Describe()}");
    }

    /// <summary>"oneDNN on (train.onednn = auto; its convolutions sound at 2 threads (...))": what a run records.</summary>
    public string Describe() => $"oneDNN {(Enabled ? "on" : "off")} ({Reason})";
}
