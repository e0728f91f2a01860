using System.Globalization;

namespace ResidualLab.Reports;

/// <summary>
/// Whether a scorecard verdict survives a change of budget or initialisation. When train.max_iters (each
/// value a full run with its own schedule: a budget) or model.init varies across runs, each value is its
/// own setting with its own verdict; this puts those verdicts side by side, one line per scheme and
/// remaining setting: "holds at every budget tried" or where it changes.
/// </summary>
internal static class Stability
{
    /// <summary>The config keys judged, with the setting's short name and what a value of it is called.</summary>
    public static readonly IReadOnlyList<(string Key, string Short, string Noun)> Axes =
    [
        ("train.max_iters", "max_iters", "budget"),
        ("model.init", "init", "initialisation"),
    ];

    public static IReadOnlyList<string> Lines(IReadOnlyList<ScorecardRow> rows)
    {
        var lines = new List<string>();
        foreach (var (_, shortName, noun) in Axes)
        {
            string prefix = shortName + "=";
            var judged = rows.Where(r => !r.IsBaseline && r.Baseline != "-")
                .Select(r => (Row: r, Tokens: r.Group.Split(' ')))
                .Where(x => x.Tokens.Any(t => t.StartsWith(prefix, StringComparison.Ordinal)))
                .Select(x => (x.Row, Value: x.Tokens.First(t => t.StartsWith(prefix, StringComparison.Ordinal))[prefix.Length..],
                    Others: string.Join(" ", x.Tokens.Where(t => !t.StartsWith(prefix, StringComparison.Ordinal)))));
            foreach (var arm in judged.GroupBy(x => x.Others))
            {
                var byValue = arm.OrderBy(x => Number(x.Value) ?? double.MaxValue).ThenBy(x => x.Value, StringComparer.Ordinal).ToList();
                if (byValue.Count < 2) continue;
                var headlines = byValue.Select(x => Headline(x.Row.Verdict)).ToList();
                string values = string.Join(", ", byValue.Select(x => x.Value));
                lines.Add(headlines.Distinct().Count() == 1
                    ? $"{arm.Key}: {headlines[0]} at every {noun} tried ({shortName} {values})"
                    : $"{arm.Key}: " + string.Join(", ", byValue.Select((x, i) => $"{headlines[i]} at {shortName}={x.Value}")) + $": the verdict depends on the {noun}");
            }
        }
        return lines;
    }

    /// <summary>The verdict's first clause: "worse", "no detectable difference", "unstable, better", ...</summary>
    public static string Headline(string verdict) => verdict.Split(':')[0];

    static double? Number(string text) => double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out double x) ? x : null;
}
