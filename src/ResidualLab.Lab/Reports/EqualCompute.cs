namespace ResidualLab.Reports;

/// <summary>
/// A scheme and its baseline compared at one budget of training compute that every compared run reached:
/// each run's validation loss there, read off its validation curve by linear interpolation between evaluations.
/// </summary>
/// <param name="Budget">The budget: training FLOPs, or seconds of training steps.</param>
/// <param name="Loss">The scheme's validation losses at the budget, over seeds.</param>
/// <param name="BaselineLoss">The baseline's, over seeds.</param>
/// <param name="Difference">Scheme - baseline (Welch); null with fewer than 2 seeds on a side.</param>
internal sealed record EqualBudget(double Budget, SampleSummary Loss, SampleSummary BaselineLoss, WelchTest? Difference);

/// <summary>
/// Comparisons at equal training FLOPs and at equal wall-clock, from the stored curves. They read
/// validation losses: only the validation split may be read before the end of training (the test split
/// is for the final numbers), and at a shared budget most runs are mid-training.
/// </summary>
internal static class EqualCompute
{
    /// <summary>What the wall-clock comparison was measured on: the hosts and thread counts of the runs.</summary>
    public static string WallClockNote(StudyData data)
    {
        var hosts = data.Environments.Select(e => e.Host).Distinct().Order(StringComparer.Ordinal).ToList();
        var threads = data.Environments.Select(e => e.Threads).Distinct().Order().ToList();
        string where = hosts.Count == 0 ? "an unrecorded machine"
            : $"{string.Join(", ", hosts)} with {string.Join(" or ", threads)} thread{(threads.SequenceEqual([1]) ? "" : "s")}";
        return $"Wall-clock depends on the machine, its load (runs trained side by side with --parallel share it) and the thread layout; these runs trained on {where}.";
    }

    /// <summary>A run's training FLOPs per step as recorded when it started; NaN when it recorded none
    /// (a vision run, or a run recorded before the count existed).</summary>
    public static double FlopsPerStep(RunData run) =>
        run.Fact(Training.RunFact.FlopsPerStep);

    /// <summary>The run's validation loss against the training FLOPs spent before each evaluation: (step x FLOPs per step, loss).</summary>
    public static IReadOnlyList<(double X, double Loss)> FlopsCurve(RunData run)
    {
        double perStep = FlopsPerStep(run);
        return double.IsFinite(perStep) ? Curve(run, step => step * perStep) : [];
    }

    /// <summary>
    /// The run's validation loss against the seconds its training steps took before each evaluation (the
    /// sum of the recorded step times; evaluations themselves not counted).
    /// </summary>
    public static IReadOnlyList<(double X, double Loss)> TimeCurve(RunData run)
    {
        var elapsed = new List<(int Step, double Seconds)>();
        double seconds = 0;
        foreach (var s in run.Steps.OrderBy(s => s.Step))
        {
            seconds += s.StepMs / 1000;
            elapsed.Add((s.Step, seconds));
        }
        double SecondsBefore(int step)
        {
            double last = 0;
            foreach (var (at, total) in elapsed)
            {
                if (at >= step) break;
                last = total;
            }
            return last;
        }
        return elapsed.Count == 0 ? [] : Curve(run, SecondsBefore);
    }

    static IReadOnlyList<(double X, double Loss)> Curve(RunData run, Func<int, double> spentBefore) =>
        run.Evals.Where(e => double.IsFinite(e.ValLoss)).OrderBy(e => e.Step).Select(e => (spentBefore(e.Step), e.ValLoss)).ToList();

    /// <summary>The curve's loss at <paramref name="x"/>, linear between its points; NaN outside them.</summary>
    public static double At(IReadOnlyList<(double X, double Loss)> curve, double x)
    {
        for (int i = 0; i < curve.Count; i++)
        {
            if (curve[i].X == x) return curve[i].Loss;
            if (curve[i].X > x)
            {
                if (i == 0) return double.NaN;
                var (x0, y0) = curve[i - 1];
                var (x1, y1) = curve[i];
                return y0 + (y1 - y0) * (x - x0) / (x1 - x0);
            }
        }
        return double.NaN;
    }

    /// <summary>
    /// <paramref name="runs"/> against <paramref name="baselineRuns"/> at the largest budget every one of them
    /// reached (the smallest of their curves' ends); null when a side has no curve.
    /// </summary>
    public static EqualBudget? Compare(IReadOnlyList<RunData> runs, IReadOnlyList<RunData> baselineRuns,
        Func<RunData, IReadOnlyList<(double X, double Loss)>> curveOf)
    {
        var curves = runs.Select(curveOf).Where(c => c.Count > 0).ToList();
        var baseCurves = baselineRuns.Select(curveOf).Where(c => c.Count > 0).ToList();
        if (curves.Count == 0 || baseCurves.Count == 0) return null;
        double budget = curves.Concat(baseCurves).Min(c => c[^1].X);
        List<double> LossesAt(IEnumerable<IReadOnlyList<(double X, double Loss)>> cs) =>
            cs.Select(c => At(c, budget)).Where(double.IsFinite).ToList();
        var losses = LossesAt(curves);
        var baseLosses = LossesAt(baseCurves);
        return new EqualBudget(budget, Statistics.Summarise(losses), Statistics.Summarise(baseLosses),
            Statistics.Welch(losses, baseLosses));
    }
}
