using System.Globalization;
using System.Text;

namespace ResidualLab.Reports;

/// <summary>
/// One setting of the necessity study: a depth, an initialisation and a budget, with each arm (with and
/// without the residual) at its own learning rate chosen on validation, compared on test.
/// </summary>
/// <param name="Difference">Test loss without minus with (positive: the residual helps), Welch over seeds.</param>
/// <param name="VerdictAtLr">The verdict with both arms at the same learning rate, for each rate tried.</param>
internal sealed record NecessityCell(int Depth, string Init, int Budget, ArmTuning With, ArmTuning Without,
    IReadOnlyList<double> WithLosses, IReadOnlyList<double> WithoutLosses, WelchTest? Difference, string Verdict,
    IReadOnlyList<(string Lr, string Verdict)> VerdictAtLr);

/// <summary>
/// The necessity study's answer, from a results folder of with/without runs tuned over the learning rate.
/// A setting's verdict: "necessary" when the arm without the residual never leaves the unigram plateau
/// (its test loss at its best learning rate stays within <see cref="PlateauMargin"/> of the loss of
/// predicting character frequencies alone) while the arm with it does; else "helps" or "hurts" when
/// Welch's test over seeds finds the difference (p &lt; 0.05), "no detectable difference" otherwise. Per
/// depth one line: the verdict, then "robust to init, learning rate and budget" or what it depends on.
/// </summary>
internal static class NecessityTable
{
    /// <summary>Nats below the unigram loss a model must reach to count as having left the plateau.</summary>
    public const double PlateauMargin = 0.05;

    public static IReadOnlyList<NecessityCell> Cells(StudyData data, double unigramLoss, string with = "pre-norm", string without = "none")
    {
        var arms = Tuning.Select(data);
        var keyed = arms.Select(a =>
        {
            var run = data.Of(a.Group, a.Depth).First();
            var config = run.Config;
            string init = config.GetValueOrDefault("model.init", "gpt2").Trim('"');
            int budget = int.Parse(config["train.max_iters"], CultureInfo.InvariantCulture);
            return (Arm: a, run.Run.Connection, init, budget);
        }).ToList();
        var cells = new List<NecessityCell>();
        foreach (var setting in keyed.GroupBy(k => (k.Arm.Depth, k.init, k.budget)).OrderBy(g => g.Key.Depth).ThenBy(g => g.Key.init, StringComparer.Ordinal).ThenBy(g => g.Key.budget))
        {
            var w = setting.FirstOrDefault(k => k.Connection == with).Arm;
            var wo = setting.FirstOrDefault(k => k.Connection == without).Arm;
            if (w?.Best is null || wo?.Best is null) continue;
            var withLosses = TestLosses(data, w, w.Best);
            var withoutLosses = TestLosses(data, wo, wo.Best);
            var atLr = w.Values.Select(v => v.Value).Intersect(wo.Values.Select(v => v.Value))
                .Select(lr => (lr, Judge(TestLosses(data, w, lr), TestLosses(data, wo, lr), unigramLoss))).ToList();
            cells.Add(new NecessityCell(setting.Key.Depth, setting.Key.init, setting.Key.budget, w, wo, withLosses, withoutLosses,
                Statistics.Welch(withoutLosses, withLosses), Judge(withLosses, withoutLosses, unigramLoss), atLr));
        }
        return cells;
    }

    static List<double> TestLosses(StudyData data, ArmTuning arm, string value) =>
        data.Of(arm.Group, arm.Depth).Where(r => r.Tuned == value && r.Done && r.Run.TestLoss is not null).Select(r => r.Run.TestLoss!.Value).ToList();

    /// <summary>The verdict on one pair of samples of final test losses.</summary>
    public static string Judge(IReadOnlyList<double> with, IReadOnlyList<double> without, double unigramLoss)
    {
        if (with.Count == 0 || without.Count == 0) return "untested";
        double plateau = unigramLoss - PlateauMargin;
        if (without.Average() >= plateau && with.Average() < plateau) return "necessary";
        var welch = Statistics.Welch(without, with);
        if (welch is null) return "untested";
        return !welch.Significant() ? "no detectable difference" : welch.Difference > 0 ? "helps" : "hurts";
    }

    /// <summary>One line per depth: the verdict, its robustness, and the numbers it rests on.</summary>
    public static IReadOnlyList<string> Lines(IReadOnlyList<NecessityCell> cells, double unigramLoss)
    {
        var lines = new List<string>();
        foreach (var depth in cells.GroupBy(c => c.Depth).OrderBy(g => g.Key))
        {
            var all = depth.ToList();
            var verdicts = all.Select(c => c.Verdict).Distinct().ToList();
            string headline = verdicts.Count == 1 ? verdicts[0] : "mixed";
            var dependsOn = new List<string>();
            if (DiffersAlong(all, c => c.Budget.ToString(CultureInfo.InvariantCulture), c => c.Init)) dependsOn.Add("init");
            bool lr = all.Any(c => c.VerdictAtLr.Any(v => v.Verdict != "untested" && v.Verdict != c.Verdict));
            if (lr) dependsOn.Add("learning rate");
            if (DiffersAlong(all, c => c.Init, c => c.Budget.ToString(CultureInfo.InvariantCulture))) dependsOn.Add("budget");
            string robustness = dependsOn.Count == 0
                ? "robust to init, learning rate and budget"
                : $"depends on {Join(dependsOn)}";
            string numbers = string.Join("; ", all.Select(c =>
                $"{c.Init} {c.Budget} steps: {c.Verdict}, without - with {Diff(c)} (with {Show(c.WithLosses)} at {c.With.Best}, without {Show(c.WithoutLosses)} at {c.Without.Best})" +
                (lr ? LrDetail(c) : "")));
            lines.Add($"depth {depth.Key}: {headline}; {robustness}. {numbers}. Unigram loss {unigramLoss.ToString("0.000", CultureInfo.InvariantCulture)}.");
        }
        return lines;
    }

    /// <summary>Whether cells that share <paramref name="fixedKey"/> get different verdicts as <paramref name="variedKey"/> changes.</summary>
    static bool DiffersAlong(IReadOnlyList<NecessityCell> cells, Func<NecessityCell, string> fixedKey, Func<NecessityCell, string> variedKey) =>
        cells.GroupBy(fixedKey).Any(g => g.Select(variedKey).Distinct().Count() > 1 && g.Select(c => c.Verdict).Distinct().Count() > 1);

    static string LrDetail(NecessityCell c) =>
        c.VerdictAtLr.Any(v => v.Verdict != c.Verdict && v.Verdict != "untested")
            ? $" [at equal learning rates: {string.Join(", ", c.VerdictAtLr.Select(v => $"{v.Lr} {v.Verdict}"))}]"
            : "";

    static string Join(List<string> items) => items.Count == 1 ? items[0] : string.Join(", ", items.Take(items.Count - 1)) + " and " + items[^1];

    static string Diff(NecessityCell c) => c.Difference is { } d
        ? $"{F(d.Difference, "+0.000;-0.000")} [95% CI {F(d.Low, "+0.000;-0.000")}, {F(d.High, "+0.000;-0.000")}]"
        : "untested";

    /// <summary>Mean [95% CI] of a sample.</summary>
    static string Show(IReadOnlyList<double> xs)
    {
        var s = Statistics.Summarise(xs);
        return s.Count < 2 ? F(s.Mean, "0.000") : $"{F(s.Mean, "0.000")} [{F(s.Low, "0.000")}, {F(s.High, "0.000")}]";
    }

    /// <summary>The table as Markdown: per depth, init and budget, each arm's learning rate and test loss, the difference and the verdict.</summary>
    public static string Markdown(IReadOnlyList<NecessityCell> cells)
    {
        var sb = new StringBuilder("| depth | init | steps | with: lr | with: test loss [95% CI] | without: lr | without: test loss [95% CI] | without - with [95% CI] | verdict |\n|---|---|---|---|---|---|---|---|---|\n");
        foreach (var c in cells)
            sb.Append(CultureInfo.InvariantCulture, $"| {c.Depth} | {c.Init} | {c.Budget} | {Lr(c.With)} | {Show(c.WithLosses)} | {Lr(c.Without)} | {Show(c.WithoutLosses)} | {Diff(c)} | {c.Verdict} |\n");
        return sb.ToString();
    }

    static string Lr(ArmTuning arm) => (arm.Best ?? "-").Replace("lr=", "") + (arm.Edges.Count > 0 ? " (edge)" : "");

    public static string Csv(IReadOnlyList<NecessityCell> cells)
    {
        var sb = new StringBuilder("depth,init,budget,with_lr,with_test_mean,with_ci95_low,with_ci95_high,without_lr,without_test_mean,without_ci95_low,without_ci95_high,difference,diff_ci95_low,diff_ci95_high,p,verdict,with_lr_edge,without_lr_edge\n");
        foreach (var c in cells)
        {
            var w = Statistics.Summarise(c.WithLosses);
            var wo = Statistics.Summarise(c.WithoutLosses);
            sb.AppendLine(string.Join(',', c.Depth, c.Init, c.Budget, (c.With.Best ?? "").Replace("lr=", ""), F(w.Mean), F(w.Low), F(w.High),
                (c.Without.Best ?? "").Replace("lr=", ""), F(wo.Mean), F(wo.Low), F(wo.High), F(c.Difference?.Difference ?? double.NaN),
                F(c.Difference?.Low ?? double.NaN), F(c.Difference?.High ?? double.NaN), F(c.Difference?.P ?? double.NaN, "0.0000"), c.Verdict,
                c.With.Edges.Count > 0, c.Without.Edges.Count > 0));
        }
        return sb.ToString();
    }

    static string F(double x, string format = "0.0000") => StudyData.F(x, format);
}
