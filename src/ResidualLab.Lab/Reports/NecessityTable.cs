using System.Globalization;
using System.Text;
using ResidualLab.Experiments;

namespace ResidualLab.Reports;

/// <summary>
/// How many steps an arm needs to reach the residual arm's final validation loss at the short budget: per seed, the first
/// crossing of that loss on the arm's validation curve, linear between evaluations, read on its short-budget run and, where
/// that never gets there, on its long-budget run; null where neither does.
/// </summary>
/// <param name="Target">The residual arm's mean final validation loss at the short budget, at its chosen learning rate.</param>
/// <param name="Steps">Per seed, the steps to reach it (null: not within <paramref name="Limit"/> steps).</param>
/// <param name="Budget">The short budget B.</param>
/// <param name="Limit">The most steps any run of the arm trained (the long budget).</param>
internal sealed record StepsToMatch(double Target, IReadOnlyList<double?> Steps, int Budget, int Limit)
{
    /// <summary>Every seed reached the target.</summary>
    public bool Reached => Steps.Count > 0 && Steps.All(s => s is not null);

    /// <summary>Steps over the short budget (K), mean and 95% CI over seeds; only when every seed reached the target.</summary>
    public SampleSummary? Factor => Reached ? Statistics.Summarise(Steps.Select(s => s!.Value / Budget).ToList()) : null;

    public override string ToString() => Reached
        ? Factor is { Count: > 1 } k
            ? FormattableString.Invariant($"{Steps.Average()!.Value:0} steps ({k.Mean:0.00}x [{k.Low:0.00}, {k.High:0.00}])")
            : FormattableString.Invariant($"{Steps.Average()!.Value:0} steps ({Steps.Average()!.Value / Budget:0.00}x)")
        : FormattableString.Invariant($"not within {Limit} steps ({Steps.Count(s => s is not null)} of {Steps.Count} seeds reached it)");
}

/// <summary>One arm of the necessity study at one depth and budget, at its own learning rate (chosen on validation).</summary>
/// <param name="TestLosses">Final test losses over seeds at the chosen learning rate.</param>
/// <param name="VersusResidual">Test loss of this arm minus the residual arm's at the same depth and budget (Welch over seeds); null for the
/// residual itself or with fewer than two seeds a side.</param>
/// <param name="Match">Steps to reach the residual arm's final validation loss at the short budget (at the short budget's row only).</param>
/// <param name="Plateau">The test loss stays within <see cref="NecessityTable.PlateauMargin"/> of the unigram loss.</param>
internal sealed record NecessityArm(string Scheme, NecessityRole Role, int Depth, int Budget, ArmTuning Tuning, IReadOnlyList<double> TestLosses,
    WelchTest? VersusResidual, StepsToMatch? Match, bool Plateau)
{
    /// <summary>The arm's test loss is not detectably worse than the residual's: the 95% CI of the difference reaches 0 or below.</summary>
    public bool WithinResidual => VersusResidual is { } w && w.Low <= 0;

    /// <summary>The chosen learning rate, "(edge)" when it is the lowest or highest of the grid.</summary>
    public string Lr => (Tuning.Best ?? "-").Replace("lr=", "") + (Tuning.Edges.Count > 0 ? " (edge)" : "");
}

/// <summary>What an arm of the necessity study is.</summary>
internal enum NecessityRole
{
    /// <summary>The residual (pre-norm): every other arm is judged against it.</summary>
    Residual,

    /// <summary>The naive removal: the residual's block with the skip deleted.</summary>
    NaiveRemoval,

    /// <summary>A method built to train without any shortcut.</summary>
    ShortcutFree,

    /// <summary>A method that removes some skips and keeps others (reported apart).</summary>
    PartialShortcut,
}

/// <summary>
/// The necessity study's answer, from a results folder: every arm at its own learning rate, compared with the residual on
/// test loss at each depth and budget, and the steps each needs to reach the residual's validation loss at the short budget.
/// Per depth one line: "necessary" when no shortcut-free arm comes within the confidence interval of the residual at either
/// budget nor reaches its short-budget loss within the long budget; "replaceable by ARM" when one is not detectably worse at
/// the short budget nor at the long one; "replaceable at Kx the steps by ARM" when one reaches the residual's short-budget validation loss on
/// every seed within the long budget (K its steps over the short budget); with the numbers, the naive removal and the arms
/// that keep some skip reported apart, and any learning rate chosen at the edge of the grid.
/// </summary>
internal static class NecessityTable
{
    /// <summary>Nats below the unigram loss a model must reach to count as having left the plateau.</summary>
    public const double PlateauMargin = 0.05;

    public static IReadOnlyList<NecessityArm> Arms(StudyData data, double unigramLoss)
    {
        var tuned = Tuning.Select(data).Where(a => a.Best is not null).Select(a =>
        {
            var run = data.Of(a.Group, a.Depth).First();
            return (Tuning: a, run.Run.Connection, Budget: int.Parse(run.Config["train.max_iters"], CultureInfo.InvariantCulture));
        }).ToList();
        var arms = new List<NecessityArm>();
        foreach (var depth in tuned.GroupBy(t => t.Tuning.Depth).OrderBy(g => g.Key))
        {
            var budgets = depth.Select(t => t.Budget).Distinct().Order().ToList();
            int shortBudget = budgets[0];
            var residualShort = depth.FirstOrDefault(t => t.Connection == NecessityStudy.Residual && t.Budget == shortBudget).Tuning;
            double? target = residualShort is null ? null : ChosenRuns(data, residualShort).Select(r => r.Run.ValLoss).OfType<double>().DefaultIfEmpty(double.NaN).Average();
            foreach (var (tuning, scheme, budget) in depth.OrderBy(t => Order(t.Connection)).ThenBy(t => t.Connection, StringComparer.Ordinal).ThenBy(t => t.Budget))
            {
                var losses = TestLosses(data, tuning);
                var residual = depth.FirstOrDefault(t => t.Connection == NecessityStudy.Residual && t.Budget == budget).Tuning;
                var versus = residual is null || scheme == NecessityStudy.Residual ? null : Statistics.Welch(losses, TestLosses(data, residual));
                var match = budget == shortBudget && target is double goal && double.IsFinite(goal)
                    ? Steps(data, depth.Where(t => t.Connection == scheme).Select(t => t.Tuning).ToList(), goal, shortBudget)
                    : null;
                bool plateau = losses.Count > 0 && losses.Average() >= unigramLoss - PlateauMargin;
                arms.Add(new NecessityArm(scheme, NecessityStudy.RoleOf(scheme), depth.Key, budget, tuning, losses, versus, match, plateau));
            }
        }
        return arms;
    }

    static int Order(string scheme) => (int)NecessityStudy.RoleOf(scheme);

    static IEnumerable<RunData> ChosenRuns(StudyData data, ArmTuning arm) =>
        data.Of(arm.Group, arm.Depth).Where(r => r.Tuned == arm.Best && r.Done);

    static List<double> TestLosses(StudyData data, ArmTuning arm) =>
        ChosenRuns(data, arm).Where(r => r.Run.TestLoss is not null).Select(r => r.Run.TestLoss!.Value).ToList();

    /// <summary>Per seed: the crossing on the shortest budget's curve that reaches <paramref name="target"/>, else on the next.</summary>
    static StepsToMatch Steps(StudyData data, IReadOnlyList<ArmTuning> budgets, double target, int shortBudget)
    {
        var runs = budgets.SelectMany(b => ChosenRuns(data, b)).ToList();
        var steps = runs.GroupBy(r => r.Run.Seed).OrderBy(g => g.Key).Select(seed => seed
            .OrderBy(r => r.Run.Steps)
            .Select(r => Crossing(r.Evals, target))
            .FirstOrDefault(s => s is not null)).ToList();
        return new StepsToMatch(target, steps, shortBudget, runs.Select(r => r.Run.Steps).DefaultIfEmpty(0).Max());
    }

    /// <summary>The first step at which the validation curve reaches <paramref name="target"/>, linear between evaluations (the first
    /// evaluation's step when it is already there); null when it never does.</summary>
    public static double? Crossing(IReadOnlyList<Results.Store.EvalRow> evals, double target)
    {
        var curve = evals.Where(e => double.IsFinite(e.ValLoss)).OrderBy(e => e.Step).ToList();
        for (int i = 0; i < curve.Count; i++)
        {
            if (curve[i].ValLoss > target) continue;
            if (i == 0) return curve[0].Step;
            var (a, b) = (curve[i - 1], curve[i]);
            return a.Step + (a.ValLoss - target) / (a.ValLoss - b.ValLoss) * (b.Step - a.Step);
        }
        return null;
    }

    /// <summary>One line per depth: the verdict, then the numbers it rests on.</summary>
    public static IReadOnlyList<string> Lines(IReadOnlyList<NecessityArm> arms, double unigramLoss)
    {
        var lines = new List<string>();
        foreach (var depth in arms.GroupBy(a => a.Depth).OrderBy(g => g.Key))
        {
            var all = depth.ToList();
            var budgets = all.Select(a => a.Budget).Distinct().Order().ToList();
            int shortBudget = budgets[0], longBudget = budgets[^1];
            var free = all.Where(a => a.Role == NecessityRole.ShortcutFree).ToList();
            // A replacement at equal steps is within the residual's interval at the short budget and not detectably worse at
            // the long one; one that is within at the short budget only falls to the steps it needs to match.
            bool NotWorseAtLong(string scheme) => longBudget == shortBudget
                || free.FirstOrDefault(a => a.Scheme == scheme && a.Budget == longBudget) is not { } atLongBudget || atLongBudget.WithinResidual;
            var atShort = free.Where(a => a.Budget == shortBudget && a.WithinResidual && NotWorseAtLong(a.Scheme)).MinBy(a => a.VersusResidual!.Difference);
            var faster = free.Where(a => a.Match is { Reached: true }).MinBy(a => a.Match!.Steps.Average());
            var atLong = free.Where(a => a.Budget == longBudget && longBudget != shortBudget && a.WithinResidual).MinBy(a => a.VersusResidual!.Difference);
            string verdict = atShort is not null ? $"replaceable by {atShort.Scheme}"
                : faster is not null ? FormattableString.Invariant($"replaceable at {faster.Match!.Steps.Average()!.Value / shortBudget:0.0}x the steps by {faster.Scheme}")
                : atLong is not null ? $"replaceable by {atLong.Scheme} at {longBudget} steps, not at {shortBudget}"
                : "necessary";
            var parts = new List<string>();
            var judged = new[] { atShort, faster, atLong }.OfType<NecessityArm>().Select(a => a.Scheme).FirstOrDefault();
            foreach (var scheme in free.Select(a => a.Scheme).Distinct().OrderBy(s => s == judged ? 0 : 1))
                parts.Add(Describe(all, scheme, shortBudget));
            string naive = string.Join("; ", all.Where(a => a.Role == NecessityRole.NaiveRemoval).Select(a => a.Scheme).Distinct().Select(s => "naive removal " + Describe(all, s, shortBudget)));
            string partial = string.Join("; ", all.Where(a => a.Role == NecessityRole.PartialShortcut).Select(a => a.Scheme).Distinct().Select(s => Describe(all, s, shortBudget) + " (keeps a skip: not shortcut-free, not counted)"));
            var residual = all.Where(a => a.Role == NecessityRole.Residual).ToList();
            string baseline = string.Join(", ", residual.Select(a => $"{a.Budget} steps {Show(a.TestLosses)} at lr {a.Lr}"));
            var edges = all.Where(a => a.Tuning.Edges.Count > 0).Select(a => $"{a.Scheme} at {a.Budget} steps ({string.Join(", ", a.Tuning.Edges)})").ToList();
            lines.Add($"depth {depth.Key}: {verdict}. Residual ({NecessityStudy.Residual}) test loss {baseline}; target for steps to match: its validation loss at {shortBudget} steps"
                + (free.FirstOrDefault(a => a.Match is not null)?.Match is { } m ? FormattableString.Invariant($" {m.Target:0.000}") : "")
                + $". Shortcut-free: {(parts.Count == 0 ? "none trained" : string.Join("; ", parts))}."
                + (naive.Length > 0 ? $" {char.ToUpperInvariant(naive[0])}{naive[1..]}." : "")
                + (partial.Length > 0 ? $" Apart: {partial}." : "")
                + (edges.Count > 0 ? $" Learning rate at an edge of the grid (the optimum may lie outside it): {string.Join("; ", edges)}." : " No chosen learning rate at an edge of the grid.")
                + FormattableString.Invariant($" Unigram loss {unigramLoss:0.000}."));
        }
        return lines;
    }

    /// <summary>"e-spa: - residual +0.210 [+0.100, +0.320] at 150 steps, +0.020 [...] at 750; steps to match 345 steps (2.30x [...])".</summary>
    static string Describe(IReadOnlyList<NecessityArm> all, string scheme, int shortBudget)
    {
        var rows = all.Where(a => a.Scheme == scheme).OrderBy(a => a.Budget).ToList();
        string differences = string.Join(", ", rows.Select(a => $"{Diff(a.VersusResidual)} at {a.Budget}" + (a.Plateau ? " (unigram plateau)" : "")));
        var match = rows.FirstOrDefault(a => a.Budget == shortBudget)?.Match;
        return $"{scheme} - residual {differences}" + (match is null ? "" : $"; steps to match {match}");
    }

    static string Diff(WelchTest? w) => w is null ? "untested" : $"{F(w.Difference, "+0.000;-0.000")} [{F(w.Low, "+0.000;-0.000")}, {F(w.High, "+0.000;-0.000")}]";

    /// <summary>Mean [95% CI] of a sample.</summary>
    static string Show(IReadOnlyList<double> xs)
    {
        var s = Statistics.Summarise(xs);
        return s.Count < 2 ? F(s.Mean, "0.000") : $"{F(s.Mean, "0.000")} [{F(s.Low, "0.000")}, {F(s.High, "0.000")}]";
    }

    /// <summary>The table as Markdown: per depth, budget and arm, its learning rate, test loss, difference from the residual and steps to match.</summary>
    public static string Markdown(IReadOnlyList<NecessityArm> arms)
    {
        var sb = new StringBuilder("| depth | steps | arm | kind | lr | test loss [95% CI] | - residual [95% CI] | steps to match the residual's validation loss at the short budget |\n|---|---|---|---|---|---|---|---|\n");
        foreach (var a in arms)
            sb.Append(CultureInfo.InvariantCulture, $"| {a.Depth} | {a.Budget} | {a.Scheme} | {Kind(a.Role)} | {a.Lr} | {Show(a.TestLosses)}{(a.Plateau ? " (unigram plateau)" : "")} | {(a.Role == NecessityRole.Residual ? "-" : Diff(a.VersusResidual))} | {a.Match?.ToString() ?? ""} |\n");
        return sb.ToString();
    }

    /// <summary>Each arm's token cosine at the embedding and after the last block, at init and trained (<see cref="RankCollapse"/>).</summary>
    public static string HealthMarkdown(IReadOnlyList<TokenCosineRow> rows)
    {
        var sb = new StringBuilder("Stream health (mean cosine between distinct tokens; 1 = rank collapse), each arm at its chosen learning rate:\n\n| arm | depth | runs | input, init | after the last block, init | input, trained | after the last block, trained |\n|---|---|---|---|---|---|---|\n");
        foreach (var r in rows.OrderBy(r => r.Depth).ThenBy(r => Order(Scheme(r.Group))).ThenBy(r => r.Group, StringComparer.Ordinal))
            sb.Append(CultureInfo.InvariantCulture, $"| {r.Group} | {r.Depth} | {r.Runs} | {F(r.InputAtInit)} | {F(r.OutputAtInit)} | {F(r.InputTrained)} | {F(r.OutputTrained)} |\n");
        return sb.ToString();
    }

    /// <summary>The scheme a group's name starts with.</summary>
    static string Scheme(string group) => group.Split(' ')[0];

    static string Kind(NecessityRole role) => role switch
    {
        NecessityRole.Residual => "residual",
        NecessityRole.NaiveRemoval => "naive removal",
        NecessityRole.ShortcutFree => "shortcut-free",
        _ => "keeps a skip",
    };

    public static string Csv(IReadOnlyList<NecessityArm> arms)
    {
        var sb = new StringBuilder("depth,budget,arm,kind,lr,lr_edge,seeds,test_mean,test_ci95_low,test_ci95_high,diff_vs_residual,diff_ci95_low,diff_ci95_high,p,unigram_plateau,match_target,match_steps_mean,match_factor_mean,match_factor_ci95_low,match_factor_ci95_high,match_seeds_reached\n");
        foreach (var a in arms)
        {
            var s = Statistics.Summarise(a.TestLosses);
            var k = a.Match?.Factor;
            sb.AppendLine(string.Join(',', a.Depth, a.Budget, a.Scheme, Kind(a.Role).Replace(' ', '-'), (a.Tuning.Best ?? "").Replace("lr=", ""),
                a.Tuning.Edges.Count > 0 ? "true" : "false", s.Count, C(s.Mean), C(s.Low), C(s.High), C(a.VersusResidual?.Difference), C(a.VersusResidual?.Low),
                C(a.VersusResidual?.High), C(a.VersusResidual?.P), a.Plateau ? "true" : "false", C(a.Match?.Target),
                C(a.Match is { Reached: true } m ? m.Steps.Average() : null), C(k?.Mean), C(k?.Low), C(k?.High),
                a.Match is null ? "" : $"{a.Match.Steps.Count(x => x is not null)}/{a.Match.Steps.Count}"));
        }
        return sb.ToString();
    }

    static string F(double x, string format = "0.0000") => StudyData.F(x, format);

    /// <summary>A CSV number: invariant round-trip text, empty when missing or not finite.</summary>
    static string C(double? x) => x is double v && double.IsFinite(v) ? v.ToString("R", CultureInfo.InvariantCulture) : "";
}
