using System.Diagnostics;
using ResidualLab.Native;
using ResidualLab.Reports;
using ResidualLab.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace ResidualLab.Bench;

// The parts every 'reslab bench' workload shares: what a workload tells the bench, the timed step loop,
// the measured result and the machine's matmul peak that model FLOP utilisation is measured against.

/// <summary>A fixed training workload of the bench: its model and batch, how it is timed, and its PyTorch twin.</summary>
internal interface IBenchWorkload
{
    string Name { get; }

    /// <summary>One line: the model's shape and the batch.</summary>
    string Description { get; }

    /// <summary>What a step trains on, one of them: "token" or "image".</summary>
    string Unit { get; }

    int ItemsPerStep { get; }

    /// <summary>How the model FLOPs per item are counted, for the table's footnote.</summary>
    string FlopsMethod { get; }

    /// <summary>The twin's script in bench/pytorch/.</summary>
    string PeerScript { get; }

    IReadOnlyList<string> PeerArguments(int steps, int warmup, int threads);

    /// <summary>Builds the model and its trainer, times <paramref name="steps"/> training steps after <paramref name="warmup"/>, frees both.</summary>
    BenchResult Run(int steps, int warmup, string device, int threads);
}

/// <summary>Measured speed and memory of one workload; items are the workload's unit (tokens, images).</summary>
internal sealed record BenchResult(
    string Name,
    double MedianStepMs,
    double ItemsPerSecond,
    double FlopsPerItem,
    long Parameters,
    long PeakRssBytes,
    long RssAfterWarmupBytes,
    long FinalRssBytes)
{
    public long RssDriftBytes => FinalRssBytes - RssAfterWarmupBytes;

    /// <summary>Model FLOP utilisation: the model FLOPs per second over a measured matrix-multiply peak.</summary>
    public double Utilisation(double peakFlops) => FlopsPerItem * ItemsPerSecond / peakFlops;

    /// <summary>The result of timed steps: median step time, throughput, memory now.</summary>
    public static BenchResult FromSteps(string name, StepTimes times, int itemsPerStep, double flopsPerItem, long parameters)
    {
        double median = Statistics.Median(times.StepMs);
        double itemsPerSecond = itemsPerStep / (median / 1000);
        return new BenchResult(name, median, itemsPerSecond, flopsPerItem, parameters,
            ProcessMemory.PeakRssBytes(), times.RssAfterWarmupBytes, ProcessMemory.RssBytes());
    }
}

/// <summary>Milliseconds of each timed step, and the resident memory after the warm-up steps.</summary>
internal sealed record StepTimes(IReadOnlyList<double> StepMs, long RssAfterWarmupBytes);

/// <summary>Runs a training step <c>warmup</c> times untimed, then <c>steps</c> times timed (waiting for CUDA).</summary>
internal static class StepTimer
{
    public static StepTimes Time(Action step, int steps, int warmup, Device device)
    {
        var times = new List<double>();
        long rssAfterWarmup = 0;
        for (int i = 0; i < warmup + steps; i++)
        {
            var sw = Stopwatch.StartNew();
            step();
            if (device.type == DeviceType.CUDA) cuda.synchronize();
            sw.Stop();
            if (i >= warmup) times.Add(sw.Elapsed.TotalMilliseconds);
            if (i == warmup - 1) rssAfterWarmup = ProcessMemory.RssBytes();
        }
        return new StepTimes(times, rssAfterWarmup);
    }
}

/// <summary>The machine's practical matrix-multiply peak in a dtype (fp32 unless told), measured now (best of several n x n products).</summary>
internal static class MatmulPeak
{
    public static double MeasureFlops(string device = "cpu", int n = 1536, int repeats = 10, ScalarType dtype = ScalarType.Float32)
    {
        var dev = TorchRuntime.ResolveDevice(device);
        using var scope = NewDisposeScope();
        var a = randn(n, n, dtype: dtype, device: dev);
        var b = randn(n, n, dtype: dtype, device: dev);
        var c = empty(n, n, dtype: dtype, device: dev);
        // Into one preallocated result (beta 0: c's contents are ignored), so no page faults of a fresh
        // output are timed; CPU operations are synchronous, CUDA ones are waited for.
        for (int i = 0; i < 2; i++) c.addmm_(a, b, beta: 0);
        double best = double.MaxValue;
        for (int i = 0; i < repeats; i++)
        {
            var sw = Stopwatch.StartNew();
            c.addmm_(a, b, beta: 0);
            if (dev.type == DeviceType.CUDA) cuda.synchronize();
            best = Math.Min(best, sw.Elapsed.TotalSeconds);
        }
        return 2.0 * n * n * n / best;
    }
}
