using System.Diagnostics;
using ResidualLab.Config;
using ResidualLab.Connections;
using ResidualLab.Data;
using ResidualLab.Families;
using ResidualLab.Training;
using ResidualLab.Training.Tasks;
using static TorchSharp.torch;

namespace ResidualLab.Bench;

/// <summary>A scheme to benchmark: a label and its scheme.</summary>
internal sealed record BenchScheme(string Label, ConnectionScheme Scheme)
{
    /// <summary>"name" or "name:key=value[:key=value...]", e.g. "hyper-connections:dynamic=false".</summary>
    public static BenchScheme Parse(string text)
    {
        var parts = text.Trim().Split(':', StringSplitOptions.TrimEntries);
        var options = new Dictionary<string, object>();
        foreach (var part in parts.Skip(1))
        {
            int eq = part.IndexOf('=');
            if (eq <= 0 || part[..eq] == "name")
                throw new ConfigException($"scheme '{text}': expected name:key=value, e.g. hyper-connections:dynamic=false");
            var probe = new ConfigValues();
            probe.Set($"connection.{part[..eq]}", part[(eq + 1)..], $"scheme '{text}'");
            options[part[..eq]] = probe.SchemeOptions[part[..eq]];
        }
        try { return new BenchScheme(text.Trim(), ConnectionCatalog.Create(parts[0], options)); }
        catch (ArgumentException ex) { throw ConfigException.At($"scheme '{text}'", ex); }
    }

    /// <summary>Every scheme of the catalog with its defaults, plus the variants its options select.</summary>
    public static IReadOnlyList<BenchScheme> Defaults =>
    [
        .. ConnectionCatalog.All.Select(e => new BenchScheme(e.Name, ConnectionCatalog.Create(e.Name))),
        Parse("none:norm=false"),
        Parse("hyper-connections:dynamic=false"),
    ];
}

/// <summary>One scheme's measurements; ratios are against the baseline scheme of the same run.</summary>
internal sealed record SchemeBenchResult(
    string Label, long Parameters, double MedianStepMs, double StepMs25, double StepMs75, long StepMemoryBytes,
    double StepTimeRatio, double StepMemoryRatio);

/// <summary>
/// Training step time and memory of connection schemes on one model config, measured in one process:
/// every scheme's model is built, warmed up, then timed step by step in interleaved rounds (the order
/// rotates each round) so that load on the machine falls on all schemes alike. Step memory is the
/// resident memory a training step adds on top of what is resident before it (model, gradients,
/// optimiser state): the peak RSS of the step (VmHWM after resetting it) minus the RSS before it,
/// after returning freed heap memory to the system.
/// </summary>
internal static class ConnectionBench
{
    public const string Baseline = "pre-norm";

    public static IReadOnlyList<SchemeBenchResult> Run(
        RunConfig config, TokenCorpus corpus, IReadOnlyList<BenchScheme> schemes, int steps, int warmup,
        Action<string>? log = null)
    {
        if (!schemes.Any(s => s.Label == Baseline))
            schemes = [new BenchScheme(Baseline, new PreNormScheme()), .. schemes];
        var tasks = schemes.Select(s => new LanguageModelTask(config with { Connection = s.Scheme }, config.Settings<GptSettings>(), corpus, CPU)).ToList();
        var trainers = tasks.Select(task => new Trainer(task, config)).ToList();
        double lr = config.Train.Lr;
        try
        {
            for (int i = 0; i < schemes.Count; i++)
            {
                for (int w = 0; w < warmup; w++) trainers[i].Step(lr);
                log?.Invoke($"warmed up {schemes[i].Label}");
            }
            var memory = schemes.Select((s, i) => StepMemory(trainers[i], lr)).ToList();

            var times = schemes.Select(_ => new List<double>()).ToList();
            for (int round = 0; round < steps; round++)
            {
                for (int k = 0; k < schemes.Count; k++)
                {
                    int i = (k + round) % schemes.Count;
                    var sw = Stopwatch.StartNew();
                    trainers[i].Step(lr);
                    times[i].Add(sw.Elapsed.TotalMilliseconds);
                }
                log?.Invoke($"round {round + 1}/{steps}");
            }

            int b = schemes.Select((s, i) => (s, i)).First(x => x.s.Label == Baseline).i;
            double baseTime = Quantile(times[b], 0.5);
            double baseMemory = Math.Max(1, memory[b]);
            return schemes.Select((s, i) => new SchemeBenchResult(
                s.Label, tasks[i].Model.ParameterCount(), Quantile(times[i], 0.5), Quantile(times[i], 0.25),
                Quantile(times[i], 0.75), memory[i], Quantile(times[i], 0.5) / baseTime, memory[i] / baseMemory)).ToList();
        }
        finally
        {
            foreach (var task in tasks) task.Dispose();
        }
    }

    static long StepMemory(Trainer trainer, double lr)
    {
        ProcessMemory.Trim();
        long before = ProcessMemory.RssBytes();
        ProcessMemory.ResetPeakRss();
        trainer.Step(lr);
        return Math.Max(0, ProcessMemory.PeakRssBytes() - before);
    }

    static double Quantile(List<double> values, double q)
    {
        var sorted = values.Order().ToList();
        double pos = q * (sorted.Count - 1);
        int lo = (int)Math.Floor(pos), hi = (int)Math.Ceiling(pos);
        return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
    }
}
