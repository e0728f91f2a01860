using System.Globalization;
using System.Text;
using System.Text.Json;
using ResidualLab.Results;

namespace ResidualLab.Bench;

/// <summary>
/// The suite's two files: bench.json (the machine, the settings, the measured peaks and one record per
/// measurement; numbers that are not finite are written as null) and bench.md (the same as a Markdown
/// table under a line naming the machine).
/// </summary>
internal static class SuiteFiles
{
    public const string JsonName = "bench.json";
    public const string MarkdownName = "bench.md";

    /// <summary>Writes both files into <paramref name="dir"/> (created if missing).</summary>
    public static void Write(string dir, SuiteReport report)
    {
        Directory.CreateDirectory(dir);
        AtomicFile.WriteText(Path.Combine(dir, JsonName), Json(report));
        AtomicFile.WriteText(Path.Combine(dir, MarkdownName), Markdown(report));
    }

    public static string Json(SuiteReport report)
    {
        var s = report.Settings;
        var env = report.Environment;
        return JsonSerializer.Serialize(new
        {
            machine = new
            {
                cpu = report.Cpu.ModelName,
                cpu_family = report.Cpu.Family,
                gpu = report.Gpu,
                residuallab = env.Version,
                commit = env.CommitDescription,
                dotnet = env.DotNet,
                torchsharp = env.TorchSharp,
                libtorch = env.LibTorch,
                python = report.Peer.Python,
                pytorch = report.Peer.Version,
                pytorch_cuda = report.Peer.CudaVersion,
            },
            settings = new { device = s.Device, tiny = s.Tiny, steps = s.Steps, warmup = s.Warmup, rounds = s.Rounds, threads = env.Threads },
            matmul_peak_flops = report.PeakFlops.ToDictionary(p => p.Key, p => Finite(p.Value)),
            rows = report.Rows.Select(r => new
            {
                name = r.Measurement.Name,
                workload = r.Measurement.Workload.Name,
                shape = Shape(r.Measurement.Workload),
                connection = r.Measurement.Connection,
                device = s.Device,
                dtype = r.Measurement.Workload.DType,
                implementation = Implementation(r.Measurement.Implementation),
                ms_per_step = Finite(r.MsPerStep),
                spread_min_ms = Finite(r.SpreadMinMs),
                spread_max_ms = Finite(r.SpreadMaxMs),
                tokens_per_second = Finite(r.TokensPerSecond),
                mfu = Finite(r.ModelFlopUtilisation),
                peak_memory_bytes = r.PeakMemoryBytes,
                peak_memory_kind = r.PeakMemoryKind,
                baseline = r.Measurement.Baseline,
                ratio_to_baseline = Finite(r.RatioToBaseline),
                status = r.Status,
            }),
        }, ResultJson.Document);
    }

    public static string Markdown(SuiteReport report)
    {
        var s = report.Settings;
        var w = s.Model;
        var md = new StringBuilder();
        md.AppendLine("# reslab bench suite").AppendLine();
        md.AppendLine($"Machine: CPU {report.Cpu.ModelName} (family {report.Cpu.Family}){(report.Gpu is null ? "" : $", GPU {report.Gpu}")}; " +
                      $"TorchSharp {report.Environment.TorchSharp} with libtorch {report.Environment.LibTorch}; twin: {report.Peer.Describe()}.").AppendLine();
        md.AppendLine($"Model: {w.Name}, {w.NLayer} layers, d {w.DModel}, {w.NHead} heads, context {w.BlockSize}, batch {w.BatchSize}, " +
                      $"vocabulary {GptWorkload.Vocabulary}; device {s.Device}, torch threads {report.Environment.Threads}; " +
                      $"{s.Steps} timed steps after {s.Warmup} warm-up, {s.Rounds} interleaved rounds; " +
                      $"matmul peak (the highest measured, before and after each round) {string.Join(", ", report.PeakFlops.Select(p => $"{p.Key} {F(p.Value / 1e9, "0.0")} GFLOP/s"))}.")
            .AppendLine();
        md.AppendLine("| measurement | implementation | connection | dtype | ms/step | spread over rounds | tokens/s | MFU | peak memory | x baseline | status |");
        md.AppendLine("|---|---|---|---|---:|---:|---:|---:|---:|---:|---|");
        foreach (var r in report.Rows)
        {
            string spread = double.IsFinite(r.SpreadMinMs) ? $"{F(r.SpreadMinMs, "0.00")}-{F(r.SpreadMaxMs, "0.00")}" : "";
            string memory = r.PeakMemoryBytes is { } bytes ? $"{F(bytes / 1048576.0, "0")} MiB" : "";
            string ratio = double.IsFinite(r.RatioToBaseline) ? $"{F(r.RatioToBaseline, "0.00")}x {r.Measurement.Baseline}" : "";
            md.AppendLine($"| {r.Measurement.Name} | {Implementation(r.Measurement.Implementation)} | {r.Measurement.Connection} | " +
                          $"{r.Measurement.Workload.DType} | {F(r.MsPerStep, "0.00")} | {spread} | {F(r.TokensPerSecond, "0")} | " +
                          $"{F(100 * r.ModelFlopUtilisation, "0.0", "%")} | {memory} | {ratio} | {r.Status} |");
        }
        md.AppendLine();
        md.AppendLine("ms/step: the median over rounds of each round's median step; spread: the lowest and highest round. " +
                      "MFU: model FLOPs (6N + 12 L T d per token, N the parameters without the position embedding) per second " +
                      "over the matrix-multiply peak of the row's dtype. x baseline: this row's ms/step over the baseline's. " +
                      "Peak memory: " + string.Join("; ", report.Rows.GroupBy(r => r.Measurement.IsPyTorch ? "PyTorch" : "ResidualLab")
                          .Select(g => $"{g.Key}, {g.First().PeakMemoryKind}")) + ".");
        return md.ToString();
    }

    public static string Implementation(SuiteImplementation implementation) => implementation switch
    {
        SuiteImplementation.ResidualLab => "ResidualLab",
        SuiteImplementation.PyTorchEager => "PyTorch eager",
        SuiteImplementation.PyTorchCompile => "PyTorch torch.compile",
        _ => throw new ArgumentOutOfRangeException(nameof(implementation), implementation, null),
    };

    static object Shape(GptWorkload w) => new
    {
        n_layer = w.NLayer, d_model = w.DModel, n_head = w.NHead, block_size = w.BlockSize, batch_size = w.BatchSize,
        vocab = GptWorkload.Vocabulary,
    };

    static double? Finite(double x) => double.IsFinite(x) ? x : null;

    /// <summary>A number for the table; empty when it is not finite.</summary>
    static string F(double x, string format, string suffix = "") =>
        double.IsFinite(x) ? x.ToString(format, CultureInfo.InvariantCulture) + suffix : "";
}
