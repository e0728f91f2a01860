using ResidualLab.Native;
using ResidualLab.Reports;
using ResidualLab.Results.Store;
using ResidualLab.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace ResidualLab.Bench;

// The benchmark suite of 'reslab bench suite', meant for a GPU: a GPT-2-small-like model trained by
// ResidualLab in fp32 and bf16, the same model trained by its PyTorch twin eager and under torch.compile,
// and mHC (n = 4) against pre-norm. Every measurement runs once per round, in the same order each round,
// so that load on the machine falls on all alike; each ends as a row: measured, skipped, or failed.

/// <summary>Who trains a suite measurement's model.</summary>
internal enum SuiteImplementation { ResidualLab, PyTorchEager, PyTorchCompile }

/// <summary>How the suite runs: the device, tiny or full sizes, steps per round, rounds, threads, the twins' Python.</summary>
internal sealed record SuiteSettings(string Device, bool Tiny, int Steps, int Warmup, int Rounds, int Threads, string Python)
{
    /// <summary>Timed steps, warm-up steps and rounds when not given: a few at tiny sizes, and at full size enough
    /// for a steady median (torch.compile compiles during the warm-up).</summary>
    public static (int Steps, int Warmup, int Rounds) Defaults(bool tiny) => tiny ? (3, 1, 2) : (20, 5, 3);

    /// <summary>GPT-2 small's shape, or tiny: 2 layers, d 64, 2 heads, context 32, batch 4.</summary>
    public GptWorkload Model => Tiny ? new GptWorkload("tiny-gpt", 2, 64, 2, 32, 4) : GptWorkload.Gpt2Small;

    /// <summary>The side of the square matrix products that measure the peak: large enough to fill a GPU, small
    /// enough at tiny sizes for a CPU to finish in a moment.</summary>
    public int PeakMatrixSize => Device.StartsWith("cuda", StringComparison.Ordinal) ? 8192 : Tiny ? 256 : 1536;
}

/// <summary>
/// One measurement: an implementation training a workload (its connection and dtype included);
/// <paramref name="ConnectionOptions"/> are connection keys beyond the name ("n=4"), and the ratio of the
/// step time is against the measurement named <paramref name="Baseline"/>.
/// </summary>
internal sealed record SuiteMeasurement(
    string Name, GptWorkload Workload, SuiteImplementation Implementation, IReadOnlyList<string> ConnectionOptions, string? Baseline)
{
    /// <summary>"pre-norm", "mhc n=4".</summary>
    public string Connection => string.Join(' ', ConnectionOptions.Prepend(Workload.Connection));

    public bool IsPyTorch => Implementation != SuiteImplementation.ResidualLab;
}

/// <summary>What one round of a measurement gave: its median step, the model's parameters and the peak memory.</summary>
internal sealed record SuiteRound(double MedianStepMs, long Parameters, long? PeakMemoryBytes);

/// <summary>
/// A measurement's outcome over its rounds. <paramref name="Status"/> is "ok", "skipped: why" or "failed: the
/// error"; the figures are NaN unless it is ok. <paramref name="PeakMemoryKind"/> says what the memory counts.
/// </summary>
internal sealed record SuiteRow(
    SuiteMeasurement Measurement, string Status, IReadOnlyList<SuiteRound> Rounds, double PeakFlops, string PeakMemoryKind,
    double BaselineMs)
{
    public const string Ok = "ok";

    bool IsOk => Status == Ok && Rounds.Count > 0;

    /// <summary>The median over rounds of each round's median step.</summary>
    public double MsPerStep => IsOk ? Statistics.Median(Rounds.Select(r => r.MedianStepMs).ToList()) : double.NaN;

    public double SpreadMinMs => IsOk ? Rounds.Min(r => r.MedianStepMs) : double.NaN;
    public double SpreadMaxMs => IsOk ? Rounds.Max(r => r.MedianStepMs) : double.NaN;
    public double TokensPerSecond => Measurement.Workload.ItemsPerStep / (MsPerStep / 1000);

    /// <summary>Model FLOPs (<see cref="GptBench.FlopsPerToken"/>, from the row's own parameter count) per second over the
    /// measured matrix-multiply peak of the row's dtype.</summary>
    public double ModelFlopUtilisation =>
        IsOk ? GptBench.FlopsPerToken(Measurement.Workload, Rounds[0].Parameters) * TokensPerSecond / PeakFlops : double.NaN;

    public long? PeakMemoryBytes => IsOk ? Rounds.Max(r => r.PeakMemoryBytes) : null;

    /// <summary>This row's step time over its baseline's; NaN without a baseline.</summary>
    public double RatioToBaseline => MsPerStep / BaselineMs;
}

/// <summary>The suite's outcome: how it ran, on what, the measured peaks by dtype, and one row per measurement.</summary>
internal sealed record SuiteReport(
    SuiteSettings Settings, RunEnvironment Environment, CpuIdentity Cpu, PeerTorch Peer, IReadOnlyDictionary<string, double> PeakFlops,
    IReadOnlyList<SuiteRow> Rows)
{
    /// <summary>The GPU's name on CUDA (as the twin's PyTorch names it); null on the CPU.</summary>
    public string? Gpu => Settings.Device.StartsWith("cuda", StringComparison.Ordinal) ? Peer.Gpu ?? "unknown GPU (no CUDA PyTorch to name it)" : null;
}

/// <summary>Runs the suite's measurements in interleaved rounds; a measurement that cannot run or fails becomes a row saying why.</summary>
internal static class BenchSuite
{
    public static readonly string[] DTypes = ["float32", "bfloat16"];

    public const string PeakRss = "peak RSS of the process";
    public const string CudaMaxAllocated = "CUDA max allocated";
    public const string NoCudaStatistics = "not measured: TorchSharp exposes no CUDA memory statistics";

    /// <summary>For each dtype: ResidualLab's pre-norm model, its PyTorch twin eager and compiled, and ResidualLab's mHC (n = 4).</summary>
    public static IReadOnlyList<SuiteMeasurement> Plan(GptWorkload model) =>
    [
        .. DTypes.SelectMany(dtype =>
        {
            var preNorm = model with { Connection = "pre-norm", DType = dtype };
            string ours = $"residuallab-pre-norm-{dtype}";
            return new SuiteMeasurement[]
            {
                new(ours, preNorm, SuiteImplementation.ResidualLab, [], null),
                new($"pytorch-eager-{dtype}", preNorm, SuiteImplementation.PyTorchEager, [], ours),
                new($"pytorch-compile-{dtype}", preNorm, SuiteImplementation.PyTorchCompile, [], ours),
                new($"residuallab-mhc-{dtype}", preNorm with { Connection = "mhc" }, SuiteImplementation.ResidualLab, ["n=4"], ours),
            };
        }),
    ];

    public static SuiteReport Run(SuiteSettings settings, Action<string> log)
    {
        var device = TorchRuntime.ResolveDevice(settings.Device);
        bool cuda = device.type == DeviceType.CUDA;
        TorchRuntime.SetThreads(settings.Threads);
        var peer = PyTorchPeer.Probe(settings.Python, TimeSpan.FromMinutes(2));
        log($"twin: {peer.Describe()}");
        // The peaks are measured before the first round and after each, and the highest count (as in 'reslab bench'):
        // on a shared machine a single measurement can fall in a slow moment and inflate the utilisation.
        var peaks = DTypes.ToDictionary(d => d, _ => 0.0);
        MeasurePeaks(settings, peaks, log);

        var plan = Plan(settings.Model);
        var status = plan.Select(m => SkipReason(m, settings, cuda, peer) ?? SuiteRow.Ok).ToArray();
        var rounds = plan.Select(_ => new List<SuiteRound>()).ToArray();
        for (int round = 1; round <= settings.Rounds; round++)
        {
            for (int i = 0; i < plan.Count; i++)
            {
                if (status[i] != SuiteRow.Ok) continue;
                try
                {
                    rounds[i].Add(RunOnce(plan[i], settings, cuda));
                    log($"round {round}/{settings.Rounds}: {plan[i].Name} {rounds[i][^1].MedianStepMs:0.00} ms/step");
                }
                catch (Exception e)
                {
                    status[i] = $"failed: {OneLine(e)}";
                    log($"round {round}/{settings.Rounds}: {plan[i].Name} {status[i]}");
                }
            }
            MeasurePeaks(settings, peaks, log);
        }

        var rows = new List<SuiteRow>();
        foreach (var (m, i) in plan.Select((m, i) => (m, i)))
        {
            double baselineMs = m.Baseline is null ? double.NaN : rows.Single(r => r.Measurement.Name == m.Baseline).MsPerStep;
            rows.Add(new SuiteRow(m, status[i], rounds[i], peaks[m.Workload.DType], MemoryKind(m, cuda), baselineMs));
        }
        return new SuiteReport(settings, RunEnvironment.Capture(settings.Device), CpuIdentity.Host, peer, peaks, rows);
    }

    /// <summary>Measures the matrix-multiply peak of every dtype and keeps the highest so far.</summary>
    static void MeasurePeaks(SuiteSettings settings, Dictionary<string, double> peaks, Action<string> log)
    {
        foreach (string dtype in DTypes)
        {
            double flops = MatmulPeak.MeasureFlops(settings.Device, settings.PeakMatrixSize,
                dtype: dtype == "bfloat16" ? ScalarType.BFloat16 : ScalarType.Float32);
            peaks[dtype] = Math.Max(peaks[dtype], flops);
        }
        log($"matmul peak: {string.Join(", ", peaks.Select(p => $"{p.Key} {p.Value / 1e9:0.0} GFLOP/s"))} (highest so far)");
    }

    /// <summary>Why a measurement cannot run here, as its status; null when it can.</summary>
    static string? SkipReason(SuiteMeasurement m, SuiteSettings settings, bool cuda, PeerTorch peer)
    {
        if (!m.IsPyTorch) return null;
        if (peer.Problem is { } problem) return $"skipped: no PyTorch to run the twin ({problem})";
        if (m.Implementation == SuiteImplementation.PyTorchCompile && !peer.Compile)
            return $"skipped: torch.compile needs PyTorch >= 2.0; {settings.Python} has {peer.Version}";
        if (cuda && !peer.Cuda) return $"skipped: the PyTorch {peer.Version} of {settings.Python} has no CUDA";
        return null;
    }

    static string MemoryKind(SuiteMeasurement m, bool cuda) =>
        !cuda ? PeakRss : m.IsPyTorch ? CudaMaxAllocated : NoCudaStatistics;

    /// <summary>Trains the measurement's model for warm-up and timed steps once. What earlier runs left is freed first
    /// (their tensors, on the GPU too), and on the CPU the peak RSS is this run's alone.</summary>
    static SuiteRound RunOnce(SuiteMeasurement m, SuiteSettings s, bool cuda)
    {
        if (!m.IsPyTorch)
        {
            ProcessMemory.Trim();
            if (!cuda) ProcessMemory.ResetPeakRss();
            var ours = GptBench.Run(m.Workload, s.Steps, s.Warmup, s.Device, s.Threads,
                m.ConnectionOptions.Select(o => $"connection.{o}"));
            return new SuiteRound(ours.MedianStepMs, ours.Parameters, cuda ? null : ours.PeakRssBytes);
        }
        var args = m.Workload.PeerArguments(s.Steps, s.Warmup, s.Threads)
            .Concat(["--device", s.Device, "--dtype", m.Workload.DType])
            .Concat(m.Implementation == SuiteImplementation.PyTorchCompile ? ["--compile"] : Array.Empty<string>());
        var timeout = s.Tiny ? TimeSpan.FromMinutes(5) : TimeSpan.FromMinutes(30);
        var twin = PyTorchPeer.Bench(m.Workload.PeerScript, args, new PeerLayout(s.Threads, s.Threads), timeout, s.Python);
        return new SuiteRound(twin.MedianStepMs, twin.Parameters, cuda ? twin.PeakCudaAllocatedBytes : twin.PeakRssBytes);
    }

    static string OneLine(Exception e) => $"{e.GetType().Name}: {e.Message}".ReplaceLineEndings(" ");
}
