using System.Globalization;

namespace ResidualLab.Reports;

/// <summary>One value of the tuned keys for one arm: its runs' final validation and test losses over seeds.</summary>
/// <param name="Value">The tuned keys' values, e.g. "lr=0.001".</param>
/// <param name="Val">Final validation loss over the finished seeds; a diverged seed makes the mean +infinity.</param>
internal sealed record TunedValue(string Value, SampleSummary Val, SampleSummary Test, int Runs, int Diverged);

/// <summary>
/// One arm (a group at a depth: scheme and every other setting) and its tuned values, in grid order,
/// with the value chosen by mean validation loss. <see cref="Edges"/> names each tuned key whose chosen
/// value is the lowest or the highest tried: the optimum may lie outside the grid.
/// </summary>
/// <param name="ChosenOn">The seeds the choice read: those every value was trained at.</param>
internal sealed record ArmTuning(string Group, int Depth, IReadOnlyList<TunedValue> Values, string? Best, IReadOnlyList<string> Edges,
    IReadOnlyList<long> ChosenOn)
{
    public TunedValue? Chosen => Values.FirstOrDefault(v => v.Value == Best);
}

/// <summary>
/// Per-arm selection for a sweep with a [tune] section: each arm's value is the one with the lowest mean
/// final validation loss over the seeds every value was trained at (a value where such a seed diverged is
/// never chosen over one where none did); the arms are then compared, on test losses, each at its own
/// chosen value over all its seeds. A study tuned on its first seed and run at the other seeds at the
/// chosen value only (<see cref="Experiments.TunedSweep"/>) is thus chosen on its first seed, and the
/// choice does not move when the other seeds arrive. Selection reads validation losses only.
/// </summary>
internal static class Tuning
{
    public static IReadOnlyList<ArmTuning> Select(StudyData data)
    {
        var arms = new List<ArmTuning>();
        foreach (var group in data.Groups)
            foreach (int depth in data.Depths)
            {
                var runs = data.Of(group, depth).ToList();
                if (runs.Count == 0) continue;
                var byValue = runs.GroupBy(r => r.Tuned).OrderBy(g => g.Key, TunedOrder.Instance).ToList();
                var common = byValue.Select(g => g.Select(r => r.Run.Seed)).Aggregate((a, b) => a.Intersect(b)).Order().ToList();
                var values = byValue.Select(g => new TunedValue(g.Key, Summarise(ValLosses(g)),
                    Statistics.Summarise(g.Where(r => r.Done && r.Run.TestLoss is not null).Select(r => r.Run.TestLoss!.Value).ToList()),
                    g.Count(), g.Count(r => r.Diverged))).ToList();
                var chosenOn = byValue.Select(g => (Value: g.Key, Val: Summarise(ValLosses(g.Where(r => common.Contains(r.Run.Seed))))))
                    .Where(v => v.Val.Count > 0 && !double.IsPositiveInfinity(v.Val.Mean)).ToList();
                string? best = chosenOn.Count == 0 ? null : chosenOn.MinBy(v => v.Val.Mean).Value;
                arms.Add(new ArmTuning(group, depth, values, best, best is null ? [] : Edges(best, values.Select(v => v.Value).ToList()), common));
            }
        return arms;
    }

    /// <summary>Final validation losses, +infinity for a diverged run.</summary>
    static List<double> ValLosses(IEnumerable<RunData> runs) =>
        runs.Select(r => r.Diverged ? double.PositiveInfinity : r.Run.ValLoss ?? double.NaN).Where(x => !double.IsNaN(x)).ToList();

    /// <summary>Mean with infinity for a diverged seed; spread and CI of the finite values only.</summary>
    static SampleSummary Summarise(IReadOnlyList<double> xs) =>
        xs.Any(double.IsPositiveInfinity) ? new SampleSummary(xs.Count, double.PositiveInfinity, double.NaN, double.NaN, double.NaN) : Statistics.Summarise(xs);

    /// <summary>The tuned keys whose value in <paramref name="best"/> is the first or last of the values tried.</summary>
    static List<string> Edges(string best, IReadOnlyList<string> all)
    {
        var edges = new List<string>();
        var chosen = Parse(best);
        foreach (var (key, value) in chosen)
        {
            var tried = all.Select(v => Parse(v)[key]).Distinct().OrderBy(v => v, TunedOrder.Instance).ToList();
            if (tried.Count < 2) continue;
            if (value == tried[0]) edges.Add($"{key}={value} is the lowest tried");
            else if (value == tried[^1]) edges.Add($"{key}={value} is the highest tried");
        }
        return edges;
    }

    static Dictionary<string, string> Parse(string tuned) => tuned.Split(' ', StringSplitOptions.RemoveEmptyEntries)
        .Select(p => p.Split('=', 2)).ToDictionary(p => p[0], p => p.Length > 1 ? p[1] : "");

    /// <summary>
    /// The study restricted to each arm's chosen value, with the tuned value removed from the groups,
    /// so the scorecard compares every arm at its own best.
    /// </summary>
    public static StudyData AtBest(StudyData data, IReadOnlyList<ArmTuning> arms)
    {
        var chosen = arms.Where(a => a.Best is not null).ToDictionary(a => (a.Group, a.Depth), a => a.Best!);
        var runs = data.Runs.Where(r => chosen.TryGetValue((r.Group, r.Depth), out var best) && r.Tuned == best).ToList();
        return data with { Runs = runs };
    }

    /// <summary>What the verdict of <paramref name="group"/> rests on: the values chosen for it and its baseline, and any edge of the grid.</summary>
    public static string Note(IReadOnlyList<ArmTuning> arms, string group, string? baseline, int? depth)
    {
        var parts = new List<string>();
        foreach (var g in new[] { group, baseline }.OfType<string>().Distinct())
        {
            var arm = arms.FirstOrDefault(a => a.Group == g && a.Depth == depth);
            if (arm?.Best is null) continue;
            string edge = arm.Edges.Count == 0 ? "" : $" ({string.Join(", ", arm.Edges)}: the optimum may lie outside the grid)";
            string on = arm.ChosenOn.Count < arm.Chosen!.Runs ? $" of seed{(arm.ChosenOn.Count == 1 ? "" : "s")} {string.Join(",", arm.ChosenOn)}" : "";
            parts.Add($"{(g == group ? "" : g + " ")}at {arm.Best} by validation{on}{edge}");
        }
        return parts.Count == 0 ? "" : "; each at its own best: " + string.Join(", ", parts);
    }

    /// <summary>Orders values numerically when they are numbers ("3e-4" before "0.001"), else as text; multi-key values key by key.</summary>
    sealed class TunedOrder : IComparer<string>
    {
        public static readonly TunedOrder Instance = new();

        public int Compare(string? a, string? b)
        {
            var xs = (a ?? "").Split(' ');
            var ys = (b ?? "").Split(' ');
            for (int i = 0; i < Math.Min(xs.Length, ys.Length); i++)
            {
                string x = xs[i][(xs[i].IndexOf('=') + 1)..], y = ys[i][(ys[i].IndexOf('=') + 1)..];
                int c = double.TryParse(x, NumberStyles.Float, CultureInfo.InvariantCulture, out double dx)
                        && double.TryParse(y, NumberStyles.Float, CultureInfo.InvariantCulture, out double dy)
                    ? dx.CompareTo(dy)
                    : string.CompareOrdinal(x, y);
                if (c != 0) return c;
            }
            return xs.Length.CompareTo(ys.Length);
        }
    }
}
