using System.Globalization;
using System.Text;
using ResidualLab.Diagnostics;
using ResidualLab.Experiments;
using ResidualLab.Training.Tasks;

namespace ResidualLab.Reports;

/// <summary>
/// One arm at one depth of the degradation study, at its learning rate chosen on validation: error rates (fractions)
/// over the seeds, the first-to-last gradient-norm ratio at initialisation, and the inference time per image where
/// it was measured. A RepVGG's test errors are its fused net's when recorded (<see cref="EvaluatedFused"/>).
/// </summary>
/// <param name="TestErrors">Per seed, the reported test errors (fused for RepVGG when recorded).</param>
/// <param name="Edges">Where the chosen learning rate is the grid's lowest or highest.</param>
/// <param name="Diverged">Runs of the arm at this depth (every learning rate) that diverged.</param>
internal sealed record DegradationRow(DegradationArm Arm, int Depth, ArmTuning Tuning, IReadOnlyList<double> TestErrors,
    SampleSummary TestError, SampleSummary TrainError, SampleSummary ValError, double GradRatioAtInit, bool EvaluatedFused,
    double FusedLogitDifference, double InferenceMicroseconds, double FusedInferenceMicroseconds, int Diverged)
{
    public IReadOnlyList<string> Edges => Tuning.Edges;
}

/// <summary>
/// The degradation study's table and verdicts, read from its results store only. Per family: for every arm, whether
/// its deepest net has a higher test error than its shallowest (Welch's 95% interval of the difference over seeds: the
/// degradation, where it excludes 0); and at each depth how far the best plain arm (chosen by validation error) and
/// RepVGG are from the residual net, with the inference time of the fused RepVGG against the ResNet's.
/// </summary>
internal static class DegradationTable
{
    public static IReadOnlyList<DegradationRow> Rows(StudyData data, IReadOnlyList<ArmTuning> tuning)
    {
        var rows = new List<DegradationRow>();
        foreach (var tuned in tuning.Where(t => t.Best is not null))
        {
            var all = data.Of(tuned.Group, tuned.Depth).ToList();
            var arm = DegradationArm.Of(all[0].Run.Config);
            if (arm is null) continue;
            var runs = all.Where(r => r.Tuned == tuned.Best && r.Done).ToList();
            var fused = runs.Select(r => Last(r, Deployment.FusedTestError)).ToList();
            bool evaluatedFused = runs.Count > 0 && fused.All(double.IsFinite);
            var test = evaluatedFused ? fused : runs.Select(r => Last(r, ClassifierEval.TestErrorName)).Where(double.IsFinite).ToList();
            rows.Add(new DegradationRow(arm, tuned.Depth, tuned, test, Statistics.Summarise(test),
                Summary(runs, ClassifierEval.TrainErrorName), Summary(runs, ClassifierEval.ValErrorName),
                Mean(runs.Select(GradRatioAtInit)), evaluatedFused, Max(runs.Select(r => Last(r, Deployment.FusedLogitDifference))),
                Mean(runs.Select(r => Last(r, Deployment.InferenceMicroseconds))), Mean(runs.Select(r => Last(r, Deployment.FusedInferenceMicroseconds))),
                all.Count(r => r.Diverged)));
        }
        var order = DegradationArm.All.ToList();
        return rows.OrderBy(r => order.IndexOf(r.Arm)).ThenBy(r => r.Depth).ToList();
    }

    /// <summary>The run's reading of <paramref name="name"/> at its last step with one; NaN without.</summary>
    static double Last(RunData run, string name) =>
        run.Diagnostics.Where(d => d.Name == name).MaxBy(d => d.Step)?.Value ?? double.NaN;

    static SampleSummary Summary(IEnumerable<RunData> runs, string name) =>
        Statistics.Summarise(runs.Select(r => Last(r, name)).Where(double.IsFinite).ToList());

    /// <summary>||grad W_first|| / ||grad W_last|| at step 0 (before any update).</summary>
    static double GradRatioAtInit(RunData run)
    {
        var atInit = run.Diagnostics.Where(d => d.Name == GradientNormProbe.Name && d.Step == 0).OrderBy(d => d.Index).ToList();
        return atInit.Count < 2 ? double.NaN : atInit[0].Value / atInit[^1].Value;
    }

    static double Mean(IEnumerable<double> xs) => xs.Where(double.IsFinite).DefaultIfEmpty(double.NaN).Average();

    static double Max(IEnumerable<double> xs) => xs.Where(double.IsFinite).DefaultIfEmpty(double.NaN).Max();

    /// <summary>The answers, one line each: per family, each arm's degradation, then the gaps to the residual net by depth.</summary>
    public static IReadOnlyList<string> Verdicts(IReadOnlyList<DegradationRow> rows)
    {
        var lines = new List<string>();
        foreach (var family in rows.GroupBy(r => r.Arm.Kind))
        {
            string kind = family.Key;
            foreach (var arm in family.GroupBy(r => r.Arm))
            {
                var byDepth = arm.OrderBy(r => r.Depth).ToList();
                if (byDepth.Count < 2) continue;
                var (shallow, deep) = (byDepth[0], byDepth[^1]);
                var welch = Statistics.Welch(deep.TestErrors, shallow.TestErrors);
                string verdict = welch is null ? "fewer than 2 seeds on a side: no interval"
                    : welch.Low > 0 ? "the deeper net is WORSE: degradation"
                    : welch.High < 0 ? "the deeper net is better: no degradation"
                    : "no difference detected at this many seeds";
                lines.Add($"{kind} {arm.Key.Name}: test error {Name(deep)} {P(deep.TestError.Mean)} vs {Name(shallow)} {P(shallow.TestError.Mean)}, "
                          + $"difference {Interval(welch, deep.TestError.Mean - shallow.TestError.Mean)} (train error {P(deep.TrainError.Mean)} vs {P(shallow.TrainError.Mean)}): {verdict}{Lr(deep, shallow)}");
            }
            foreach (var depth in family.GroupBy(r => r.Depth).OrderBy(g => g.Key))
            {
                var residual = depth.FirstOrDefault(r => r.Arm.Residual);
                if (residual is null) continue;
                // Chosen by validation error, so the test interval is not the winner of a test-set race.
                var bestPlain = depth.Where(r => r.Arm.TrainedPlain && r.ValError.Count > 0).MinBy(r => r.ValError.Mean);
                foreach (var (row, what) in new[] { (bestPlain, "best plain arm (by validation error)"), (depth.FirstOrDefault(r => r.Arm.Name == "repvgg"), "RepVGG") })
                {
                    if (row is null) continue;
                    var gap = Statistics.Welch(row.TestErrors, residual.TestErrors);
                    string speed = row.Arm.Name == "repvgg" && double.IsFinite(row.FusedInferenceMicroseconds) && double.IsFinite(residual.InferenceMicroseconds)
                        ? string.Create(CultureInfo.InvariantCulture, $"; inference {row.FusedInferenceMicroseconds:0.#} us/image fused ({row.InferenceMicroseconds:0.#} branched) vs {residual.InferenceMicroseconds:0.#} for {Name(residual)} ({row.FusedInferenceMicroseconds / residual.InferenceMicroseconds:0.00}x)")
                        : "";
                    lines.Add($"{kind} depth {depth.Key}: {what} {row.Arm.Name}{(row.EvaluatedFused ? " (fused)" : "")} test error {P(row.TestError.Mean)} vs {Name(residual)} {P(residual.TestError.Mean)}: "
                              + $"gap {Interval(gap, row.TestError.Mean - residual.TestError.Mean)}{speed}{Lr(row, residual)}");
                }
            }
        }
        return lines;
    }

    static string Name(DegradationRow r) => $"{r.Arm.Name}-{r.Depth}";

    static string P(double x) => double.IsFinite(x) ? (100 * x).ToString("0.00", CultureInfo.InvariantCulture) + "%" : "-";

    static string Pp(double x) => (100 * x).ToString("+0.00;-0.00;0.00", CultureInfo.InvariantCulture);

    /// <summary>"+1.23 points [95% CI -0.40, +2.86]", or the bare difference without an interval.</summary>
    static string Interval(WelchTest? welch, double difference) => welch is null
        ? $"{Pp(difference)} points"
        : $"{Pp(welch.Difference)} points [95% CI {Pp(welch.Low)}, {Pp(welch.High)}]";

    /// <summary>Where a verdict's learning rates sit on the grid's edge, said after it.</summary>
    static string Lr(params DegradationRow[] rows)
    {
        var edges = rows.Where(r => r.Edges.Count > 0).Select(r => $"{Name(r)} {string.Join(", ", r.Edges)}").ToList();
        return edges.Count == 0 ? "" : $" (at the grid's edge: {string.Join("; ", edges)}: the optimum may lie outside it)";
    }

    static readonly string[] Header =
        ["family", "arm", "depth", "lr", "seeds", "test err %", "95% CI", "train err %", "val err %", "g1/gL init", "us/image", "us/image fused", "diverged", "note"];

    static string[] Cells(DegradationRow r) =>
    [
        r.Arm.Kind, r.Arm.Name, r.Depth.ToString(CultureInfo.InvariantCulture), r.Tuning.Best?.Split('=')[^1] ?? "-",
        r.TestErrors.Count.ToString(CultureInfo.InvariantCulture), F(100 * r.TestError.Mean, "0.00"),
        double.IsFinite(r.TestError.Low) ? $"{F(100 * r.TestError.Low, "0.00")}..{F(100 * r.TestError.High, "0.00")}" : "-",
        F(100 * r.TrainError.Mean, "0.00"), F(100 * r.ValError.Mean, "0.00"), F(r.GradRatioAtInit, "G3"),
        F(r.InferenceMicroseconds, "0.0"), F(r.FusedInferenceMicroseconds, "0.0"), r.Diverged.ToString(CultureInfo.InvariantCulture),
        string.Join("; ", new[] { r.EvaluatedFused ? $"test error of the fused net (max logit difference from branched {F(r.FusedLogitDifference, "G2")})" : "" }
            .Concat(r.Edges).Where(s => s.Length > 0)),
    ];

    public static IReadOnlyList<string> Columns => Header;

    public static IReadOnlyList<string[]> TableCells(IReadOnlyList<DegradationRow> rows) => rows.Select(Cells).ToList();

    public static string Markdown(IReadOnlyList<DegradationRow> rows)
    {
        var sb = new StringBuilder();
        sb.AppendLine($"| {string.Join(" | ", Header)} |");
        sb.AppendLine($"|{string.Concat(Header.Select(_ => "---|"))}");
        foreach (var r in rows) sb.AppendLine($"| {string.Join(" | ", Cells(r))} |");
        return sb.ToString();
    }

    public static string Csv(IReadOnlyList<DegradationRow> rows)
    {
        var sb = new StringBuilder("family,arm,depth,lr,seeds,test_error,test_error_low,test_error_high,train_error,val_error,grad_ratio_init,infer_us_per_image,infer_us_per_image_fused,evaluated_fused,fused_max_abs_logit_diff,diverged,lr_at_edge\n");
        foreach (var r in rows)
            sb.AppendLine(string.Join(',', r.Arm.Kind, r.Arm.Name, r.Depth, r.Tuning.Best?.Split('=')[^1] ?? "", r.TestErrors.Count,
                C(r.TestError.Mean), C(r.TestError.Low), C(r.TestError.High), C(r.TrainError.Mean), C(r.ValError.Mean), C(r.GradRatioAtInit),
                C(r.InferenceMicroseconds), C(r.FusedInferenceMicroseconds), r.EvaluatedFused ? "true" : "false", C(r.FusedLogitDifference), r.Diverged,
                r.Edges.Count > 0 ? "true" : "false"));
        return sb.ToString();
    }

    static string F(double x, string format) => double.IsFinite(x) ? x.ToString(format, CultureInfo.InvariantCulture) : "-";

    static string C(double x) => double.IsFinite(x) ? x.ToString("R", CultureInfo.InvariantCulture) : "";
}
