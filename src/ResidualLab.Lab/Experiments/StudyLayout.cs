using System.Diagnostics;
using System.Globalization;
using ResidualLab.Config;
using ResidualLab.Processes;
using ResidualLab.Results.Store;

namespace ResidualLab.Experiments;

/// <summary>
/// How a sweep spreads over the machine's cores: <see cref="Parallel"/> runs at a time, each its own process
/// with <see cref="Threads"/> intra-op threads. The small models of the presets scale poorly over threads
/// (a d 64 step is too short to split well), so on a CPU one thread per run, as many runs as cores, trains
/// the most runs per hour; <c>reslab bench study</c> measures every layout on a real sweep.
/// </summary>
internal sealed record StudyLayout(int Parallel, int Threads)
{
    /// <summary>Every layout that fills <paramref name="cores"/>: p runs at a time x cores / p threads, p a divisor of the cores.</summary>
    public static IReadOnlyList<StudyLayout> Candidates(int cores) =>
        Enumerable.Range(1, Math.Max(1, cores)).Where(p => cores % p == 0).Select(p => new StudyLayout(p, cores / p)).ToList();

    /// <summary>
    /// The default for <paramref name="runs"/> runs: on the CPU, as many at a time as there are cores (never more
    /// than the runs), sharing the cores out as threads; on a GPU one at a time, since the runs would share it.
    /// </summary>
    public static StudyLayout Auto(int runs, string device, int cores)
    {
        if (device != "cpu" || runs <= 1 || cores <= 1) return new StudyLayout(1, 0);
        int parallel = Math.Min(runs, cores);
        return new StudyLayout(parallel, Math.Max(1, cores / parallel));
    }

    /// <summary>Sets train.threads for the layout where the config leaves it to libtorch (0), and says where it came from.</summary>
    public void ApplyTo(ConfigValues values, string source)
    {
        if (Threads > 0 && values.Int("train.threads") == 0) values.Set("train.threads", (long)Threads, source);
    }

    public override string ToString() =>
        Threads > 0 ? $"{Parallel} at a time x {Threads} thread{(Threads == 1 ? "" : "s")}" : $"{Parallel} at a time";
}

/// <summary>What training a sample of a sweep's runs took in one layout.</summary>
internal sealed record LayoutTiming(StudyLayout Layout, int Runs, double WallSeconds, int Failed)
{
    public double RunsPerHour => Runs * 3600.0 / WallSeconds;
}

/// <summary>
/// Runs per hour of a sweep in each layout, measured by training the same sample of its runs, at their full
/// length, in every layout in turn, each into a folder of its own (so nothing is skipped as finished).
/// </summary>
internal static class StudyLayoutBench
{
    /// <summary><paramref name="count"/> runs spread evenly through the plan (its first axis varies slowest).</summary>
    public static IReadOnlyList<RunConfig> Sample(IReadOnlyList<RunConfig> runs, int count)
    {
        if (count >= runs.Count) return runs;
        return Enumerable.Range(0, count).Select(i => runs[(int)((long)i * runs.Count / count)]).ToList();
    }

    public static LayoutTiming Time(SweepPlan plan, IReadOnlyList<RunConfig> sample, StudyLayout layout, string folder,
        Action<string> log, ReslabCommand? reslab = null)
    {
        var runs = sample.Select(r => r with { Threads = layout.Threads }).ToList();
        var subset = plan with { Runs = runs };
        using var store = ResultsStore.Open(folder);
        var clock = Stopwatch.StartNew();
        var outcome = SweepRunner.Run(subset, folder, store, layout.Parallel, _ => null, log, reslab: reslab);
        return new LayoutTiming(layout, runs.Count, clock.Elapsed.TotalSeconds, outcome.Unfinished.Count);
    }

    /// <summary>A Markdown table of the layouts, the fastest marked.</summary>
    public static string Markdown(IReadOnlyList<LayoutTiming> timings)
    {
        double best = timings.Max(t => t.RunsPerHour);
        var lines = new List<string>
        {
            "| layout | runs | wall s | runs/hour | x best | failed |",
            "|---|---:|---:|---:|---:|---:|",
        };
        lines.AddRange(timings.Select(t => string.Create(CultureInfo.InvariantCulture,
            $"| {t.Layout}{(t.RunsPerHour == best ? " (best)" : "")} | {t.Runs} | {t.WallSeconds:0.0} | {t.RunsPerHour:0} | {t.RunsPerHour / best:0.00} | {t.Failed} |")));
        return string.Join('\n', lines);
    }
}
