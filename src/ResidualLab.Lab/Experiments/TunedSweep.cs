using ResidualLab.Config;
using ResidualLab.Reports;
using ResidualLab.Results.Store;

namespace ResidualLab.Experiments;

/// <summary>What a tuned sweep ran: the runs of both stages (the plan its tables read) and what each stage did.</summary>
internal sealed record TunedSweepOutcome(SweepPlan Plan, SweepOutcome Tuning, SweepOutcome? Rest)
{
    public int Total => Plan.Runs.Count;

    /// <summary>Runs trained by either stage (the second retries the first's unfinished ones).</summary>
    public int Trained => Tuning.Trained.Union(Rest?.Trained ?? []).Count();

    /// <summary>Runs left unfinished at the end: the second stage's, which covers the first's, when there was one.</summary>
    public IReadOnlyList<string> Unfinished => Rest?.Unfinished ?? Tuning.Unfinished;

    /// <summary>Runs found finished (or being trained by another process) and not trained here.</summary>
    public int Skipped => Total - Trained - Unfinished.Count;
}

/// <summary>
/// A sweep with a [tune] axis run in two stages: every tuned value of every arm at the first seed (the tuning stage),
/// then the other seeds at each arm's value chosen on that seed's validation loss only (<see cref="Tuning.Select"/>).
/// The fully crossed grid trains every value at every seed; this trains (values + seeds - 1) runs per arm instead of
/// values x seeds, and the seeds after the first, which give the confidence intervals, are the chosen value's alone.
/// The choice reads one seed's validation loss, so it is noisier than a mean over seeds; the test split stays unread.
/// An arm whose tuning runs are not all finished (failed, interrupted) gets no later seeds until they are: running the
/// study again trains them, then the rest.
/// </summary>
internal static class TunedSweep
{
    const string Seed = "train.seed";

    /// <summary>The runs of <paramref name="plan"/> at its first seed: every tuned value of every arm.</summary>
    public static SweepPlan TuningStage(SweepPlan plan)
    {
        long first = plan.Runs.Min(r => r.Train.Seed);
        return plan with { Runs = plan.Runs.Where(r => r.Train.Seed == first).ToList() };
    }

    /// <summary>
    /// The tuning stage's runs, then the runs of <paramref name="plan"/> at later seeds whose tuned values are the ones
    /// chosen for their arm on <paramref name="tuning"/> (the finished runs of the tuning stage). Arms with an unfinished
    /// tuning run, or no value that trained, have no later seeds.
    /// </summary>
    public static SweepPlan WithChoices(SweepPlan plan, StudyData tuning)
    {
        var stage = TuningStage(plan);
        long first = stage.Runs[0].Train.Seed;
        string[] arm = [Seed, .. plan.TunedKeys];
        var finished = tuning.Runs.ToDictionary(r => r.Run.RunId);
        var complete = stage.Runs.GroupBy(r => Without(r, arm)).Where(g => g.All(r => finished.ContainsKey(r.RunId)))
            .Select(g => g.Key).ToHashSet();
        var chosen = Tuning.Select(tuning).Where(a => a.Best is not null).ToDictionary(a => (a.Group, a.Depth), a => a.Best!);
        // Each later run's twin at the first seed: the tuning run with the same config but for the seed.
        var twins = stage.Runs.Where(r => finished.ContainsKey(r.RunId)).ToDictionary(r => Without(r, [Seed]), r => finished[r.RunId]);
        var rest = plan.Runs.Where(r => r.Train.Seed != first && complete.Contains(Without(r, arm))
            && twins.TryGetValue(Without(r, [Seed]), out var twin)
            && chosen.TryGetValue((twin.Group, twin.Depth), out var best) && twin.Tuned == best);
        return plan with { Runs = [.. stage.Runs, .. rest] };
    }

    /// <summary>
    /// The runs a two-stage sweep of <paramref name="plan"/> will have, for estimates before its choices are known:
    /// the tuning stage, and each arm's later seeds at its first tuned value (the cost of a run hardly depends on it).
    /// </summary>
    public static IReadOnlyList<RunConfig> Projected(SweepPlan plan)
    {
        var stage = TuningStage(plan);
        long first = stage.Runs[0].Train.Seed;
        var firstValue = stage.Runs.GroupBy(r => Without(r, [Seed, .. plan.TunedKeys])).Select(g => Without(g.First(), [Seed])).ToHashSet();
        return [.. stage.Runs, .. plan.Runs.Where(r => r.Train.Seed != first && firstValue.Contains(Without(r, [Seed])))];
    }

    /// <summary>
    /// Runs the tuning stage with <paramref name="sweep"/>, reads its finished runs with <paramref name="load"/>, then runs
    /// the later seeds at the chosen values (not when the tuning stage was stopped: <paramref name="stopped"/>).
    /// </summary>
    public static TunedSweepOutcome Run(SweepPlan plan, Func<SweepPlan, SweepOutcome> sweep, Func<SweepPlan, StudyData> load,
        Func<bool> stopped, Action<string> log)
    {
        var stage = TuningStage(plan);
        var tuning = sweep(stage);
        if (stopped()) return new TunedSweepOutcome(stage, tuning, null);
        var full = WithChoices(plan, load(stage));
        int later = full.Runs.Count - stage.Runs.Count;
        log($"tuning stage: {stage.Runs.Count} runs at seed {stage.Runs[0].Train.Seed}; the other seeds at each arm's chosen value: {later} runs");
        return new TunedSweepOutcome(full, tuning, later == 0 ? null : sweep(full));
    }

    /// <summary>The finished runs of <paramref name="plan"/> in <paramref name="store"/>, grouped with its tuned keys.</summary>
    public static StudyData Load(ResultsStore store, SweepPlan plan)
    {
        var ids = plan.Runs.Select(r => r.RunId).ToHashSet();
        var data = StudyData.Load(store, plan.TunedKeys);
        return data with { Runs = data.Runs.Where(r => ids.Contains(r.Run.RunId)).ToList() };
    }

    /// <summary>
    /// The run's canonical config without the lines of <paramref name="keys"/>: what it shares with its twins at other
    /// values of them (without the seed and the tuned keys: its arm).
    /// </summary>
    static string Without(RunConfig run, IReadOnlyList<string> keys) => string.Join("\n", run.Canonical.Split('\n')
        .Where(line => !keys.Any(k => line.StartsWith(k + "=", StringComparison.Ordinal))));
}
