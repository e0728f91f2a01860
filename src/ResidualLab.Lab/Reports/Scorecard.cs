namespace ResidualLab.Reports;

/// <summary>
/// One scheme judged against the baseline. Loss difference = scheme - baseline (positive: worse), at
/// the deepest depth both have; ratios are scheme / baseline averaged over the depths both have.
/// <see cref="EqualFlops"/> and <see cref="EqualTime"/> compare validation losses at the compared depth at the
/// largest training FLOPs and the most seconds of training every compared run reached; <see cref="FlopsRatio"/>
/// is the scheme's training FLOPs per step over the baseline's there (NaN: not recorded).
/// </summary>
internal sealed record ScorecardRow(
    string Group,
    string Baseline,
    bool IsBaseline,
    int? ComparedDepth,
    SampleSummary Loss,
    WelchTest? Difference,
    int Diverged,
    int Finished,
    double WorstGradSpike,
    double DepthSlope,
    double BaselineDepthSlope,
    double ThroughputRatio,
    WelchTest? ThroughputTest,
    double MemoryRatio,
    long Parameters,
    double ParameterRatio,
    string Verdict)
{
    public double FlopsRatio { get; init; } = double.NaN;
    public EqualBudget? EqualFlops { get; init; }
    public EqualBudget? EqualTime { get; init; }

    public double DivergenceRate => Finished == 0 ? double.NaN : (double)Diverged / Finished;

    /// <summary>The verdict's headline, its words before the reasons ("worse", "no detectable difference", "baseline", ...).</summary>
    public string Headline => Verdict.IndexOf(": ", StringComparison.Ordinal) is var colon and >= 0 ? Verdict[..colon] : Verdict;
}

/// <summary>The necessity scorecard: every scheme against a baseline, from the recorded runs only.</summary>
internal static class Scorecard
{
    /// <summary>Slopes of loss vs ln(depth) differing by less than this (nats per e-fold of depth) count as equal.</summary>
    public const double SlopeTolerance = 0.05;

    public static IReadOnlyList<ScorecardRow> Build(StudyData data, string baselineScheme)
    {
        var rows = new List<ScorecardRow>();
        foreach (var group in data.Groups)
        {
            string? baseline = data.BaselineOf(group, baselineScheme);
            rows.Add(Row(data, group, baseline));
        }
        return rows.OrderBy(r => r.Baseline).ThenBy(r => r.IsBaseline ? 0 : 1).ToList();
    }

    static ScorecardRow Row(StudyData data, string group, string? baseline)
    {
        var runs = data.Of(group).ToList();
        var baseRuns = baseline is null ? [] : data.Of(baseline).ToList();
        var sharedDepths = runs.Where(r => r.Done).Select(r => r.Depth)
            .Intersect(baseRuns.Where(r => r.Done).Select(r => r.Depth)).Order().ToList();
        int? depth = sharedDepths.Count > 0 ? sharedDepths[^1] : runs.Where(r => r.Done).Select(r => (int?)r.Depth).Max();
        var losses = depth is null ? [] : data.FinalLosses(group, depth.Value);
        var welch = baseline is null || baseline == group || depth is null ? null
            : Statistics.Welch(losses, data.FinalLosses(baseline, depth.Value));

        double Ratio(Func<RunData, double> measure) => sharedDepths.Count == 0 ? double.NaN : sharedDepths.Average(d =>
            runs.Where(r => r.Done && r.Depth == d).Average(measure) / baseRuns.Where(r => r.Done && r.Depth == d).Average(measure));

        int deepest = runs.Max(r => r.Depth);
        long parameters = runs.Where(r => r.Depth == deepest).Select(r => r.Run.Parameters).DefaultIfEmpty(0).Max();
        long baseParameters = baseRuns.Where(r => r.Depth == deepest).Select(r => r.Run.Parameters).DefaultIfEmpty(0).Max();
        var row = new ScorecardRow(
            Group: group,
            Baseline: baseline ?? "-",
            IsBaseline: group == baseline,
            ComparedDepth: depth,
            Loss: Statistics.Summarise(losses),
            Difference: welch,
            Diverged: runs.Count(r => r.Diverged),
            Finished: runs.Count,
            WorstGradSpike: runs.Select(GradSpike).Where(double.IsFinite).DefaultIfEmpty(double.NaN).Max(),
            DepthSlope: DepthSlope(runs),
            BaselineDepthSlope: DepthSlope(baseRuns),
            ThroughputRatio: Ratio(r => r.Run.ItemsPerSecond),
            ThroughputTest: depth is null || baseline is null || baseline == group ? null
                : Statistics.Welch(ItemsPerSecond(runs, depth.Value), ItemsPerSecond(baseRuns, depth.Value)),
            MemoryRatio: Ratio(r => r.Run.PeakRssBytes),
            Parameters: parameters,
            ParameterRatio: baseParameters > 0 ? (double)parameters / baseParameters : double.NaN,
            Verdict: "");
        if (depth is { } at && baseline is not null && baseline != group)
        {
            var armRuns = runs.Where(r => r.Done && r.Depth == at).ToList();
            var baseAt = baseRuns.Where(r => r.Done && r.Depth == at).ToList();
            row = row with
            {
                FlopsRatio = armRuns.Select(EqualCompute.FlopsPerStep).DefaultIfEmpty(double.NaN).Average()
                             / baseAt.Select(EqualCompute.FlopsPerStep).DefaultIfEmpty(double.NaN).Average(),
                EqualFlops = EqualCompute.Compare(armRuns, baseAt, EqualCompute.FlopsCurve),
                EqualTime = EqualCompute.Compare(armRuns, baseAt, EqualCompute.TimeCurve),
            };
        }
        return row with { Verdict = Verdict(row, baseRuns.Count(r => r.Diverged), baseRuns.Count) };
    }

    static IReadOnlyList<double> ItemsPerSecond(IEnumerable<RunData> runs, int depth) =>
        runs.Where(r => r.Done && r.Depth == depth).Select(r => r.Run.ItemsPerSecond).ToList();

    /// <summary>Steps of the trailing window a gradient norm is compared with.</summary>
    public const int SpikeWindow = 20;

    /// <summary>
    /// How far a run's global gradient norm jumped: the largest ratio of a step's norm to the median of
    /// the <see cref="SpikeWindow"/> steps before it (so the large gradients of the first steps do not count as spikes).
    /// </summary>
    public static double GradSpike(RunData run)
    {
        var norms = run.Steps.Select(s => s.GradNorm).ToList();
        double worst = double.NaN;
        for (int t = SpikeWindow; t < norms.Count; t++)
        {
            double median = Statistics.Median(norms.GetRange(t - SpikeWindow, SpikeWindow));
            if (median > 0 && double.IsFinite(norms[t])) worst = double.IsNaN(worst) ? norms[t] / median : Math.Max(worst, norms[t] / median);
        }
        return worst;
    }

    /// <summary>Least-squares slope of final test loss against ln(depth) over done runs (NaN with one depth).</summary>
    public static double DepthSlope(IReadOnlyList<RunData> runs)
    {
        var done = runs.Where(r => r.Done && r.Run.TestLoss is not null).ToList();
        return Statistics.Slope(done.Select(r => Math.Log(r.Depth)).ToList(), done.Select(r => r.Run.TestLoss!.Value).ToList());
    }

    /// <summary>One plain-language line computed from the row's numbers: its headline, a colon, and the reasons
    /// (<see cref="ScorecardRow.Headline"/> reads the headline back).</summary>
    public static string Verdict(ScorecardRow r, int baselineDiverged, int baselineFinished)
    {
        if (r.Baseline == "-") return "no baseline runs recorded under the same setting: nothing to compare with";
        var reasons = new List<string>();
        string headline;
        double baseRate = baselineFinished == 0 ? 0 : (double)baselineDiverged / baselineFinished;
        bool unstable = r.Diverged > 0 && r.DivergenceRate > baseRate;
        if (unstable) reasons.Add($"diverged in {r.Diverged} of {r.Finished} runs ({baselineDiverged} of {baselineFinished} for {r.Baseline})");

        if (r.IsBaseline)
        {
            headline = "baseline";
            reasons.Add($"final test loss {F(r.Loss.Mean, "0.000")} at {r.ComparedDepth} layers");
        }
        else if (r.Difference is not { } d)
        {
            headline = unstable ? "unstable" : "untested";
            reasons.Add($"too few finished seeds at {Depth(r)} for a test (2 per side needed)");
        }
        else
        {
            string ci = $"95% CI {F(d.Low, "+0.000;-0.000")} to {F(d.High, "+0.000;-0.000")}, {P(d.P)}";
            if (d.Significant() && d.Difference > 0)
            {
                headline = "worse";
                reasons.Add($"final test loss {F(d.Difference, "+0.000")} nats above {r.Baseline} at {Depth(r)} ({ci})");
            }
            else if (d.Significant())
            {
                headline = "better";
                reasons.Add($"final test loss {F(-d.Difference, "0.000")} nats below {r.Baseline} at {Depth(r)} ({ci})");
            }
            else
            {
                headline = "no detectable difference";
                reasons.Add($"final test loss within noise of {r.Baseline} at {Depth(r)} ({F(d.Difference, "+0.000;-0.000")}, {ci})");
            }
            if (unstable) headline = "unstable, " + headline;
        }

        if (!r.IsBaseline && double.IsFinite(r.DepthSlope) && double.IsFinite(r.BaselineDepthSlope))
        {
            double gap = r.DepthSlope - r.BaselineDepthSlope;
            string slopes = $"{F(r.DepthSlope, "+0.000;-0.000")} vs {F(r.BaselineDepthSlope, "+0.000;-0.000")} per ln(depth)";
            if (gap > SlopeTolerance) reasons.Add($"gains less from depth than {r.Baseline} ({slopes})");
            else if (gap < -SlopeTolerance) reasons.Add($"gains more from depth than {r.Baseline} ({slopes})");
            else reasons.Add($"scales with depth like {r.Baseline} ({slopes})");
        }
        // Timings vary with the machine's load: a throughput difference is named only when Welch's test finds it.
        if (!r.IsBaseline && r.ThroughputTest?.Significant() == true && Math.Abs(r.ThroughputRatio - 1) >= 0.1)
            reasons.Add($"{F(r.ThroughputRatio, "0.00")}x the throughput ({P(r.ThroughputTest.P)})");
        if (!r.IsBaseline && double.IsFinite(r.ParameterRatio) && Math.Abs(r.ParameterRatio - 1) >= 0.01)
            reasons.Add($"{F(r.ParameterRatio, "0.00")}x the parameters");
        if (!r.IsBaseline && r.EqualFlops is { } flops)
            reasons.Add($"at equal training FLOPs ({F(r.FlopsRatio, "0.00")}x per step; {EqualBudgetText(flops, $"{F(flops.Budget, "0.00e+0")} FLOPs")})");
        if (!r.IsBaseline && r.EqualTime is { } time)
            reasons.Add($"at equal wall-clock ({EqualBudgetText(time, $"{F(time.Budget, "0.#")} s of training")})");
        return $"{headline}: {string.Join("; ", reasons)}";
    }

    /// <summary>"validation loss at 1.20e+12 FLOPs: +0.031 (95% CI ...), no detectable difference"; without a test, the two means.</summary>
    static string EqualBudgetText(EqualBudget e, string budget)
    {
        string head = $"validation loss at {budget}";
        if (e.Difference is not { } d)
            return $"{head}: {F(e.Loss.Mean, "0.000")} vs {F(e.BaselineLoss.Mean, "0.000")}, {e.Loss.Count} and {e.BaselineLoss.Count} seeds, too few for a test";
        string call = !d.Significant() ? "no detectable difference" : d.Difference > 0 ? "worse" : "better";
        return $"{head}: {F(d.Difference, "+0.000;-0.000")} (95% CI {F(d.Low, "+0.000;-0.000")} to {F(d.High, "+0.000;-0.000")}, {P(d.P)}), {call}";
    }

    static string Depth(ScorecardRow r) => $"{r.ComparedDepth} layers";

    static string P(double p) => p < 0.001 ? "p < 0.001" : $"p = {F(p, "0.000")}";

    static string F(double x, string format) => StudyData.F(x, format);
}
