using System.Globalization;
using System.Text;
using ResidualLab.Results.Store;

namespace ResidualLab.Reports;

/// <summary>A results page to write with a report: where, the command that writes it, and the command that trained the runs.</summary>
/// <param name="Path">The markdown file to write (docs/results/NAME.md).</param>
/// <param name="ReportCommand">The command that writes the page, as the page names it.</param>
/// <param name="TrainedBy">The command that trained the runs, as its author gives it (the store does not record it); null: not given.</param>
internal sealed record ResultsPageRequest(string Path, string ReportCommand, string? TrainedBy);

/// <summary>
/// A results page (docs/results/*.md) written from a results store: where the numbers come from (the command, and the
/// runs' commits, CPUs, threads, devices and dates as the store recorded them for each run), the final test loss of
/// every group and depth with its difference from the baseline, the tuned choices and the scorecard's verdicts.
/// Everything on it is read from the store, so a page can be written again from the same store.
/// </summary>
internal static class ResultsPage
{
    public static string Render(StudyData data, IReadOnlyList<FinalLossRow> finalLoss, IReadOnlyList<ScorecardRow> scorecard,
        IReadOnlyList<ArmTuning> tuning, IReadOnlyList<string> stability, string baseline, string resultsDir, ResultsPageRequest request)
    {
        var page = new StringBuilder();
        void Line(FormattableString text) => page.Append(FormattableString.Invariant(text)).Append('\n');
        string folder = System.IO.Path.GetFileName(System.IO.Path.TrimEndingDirectorySeparator(System.IO.Path.GetFullPath(resultsDir)));
        var envs = data.Environments;
        var runs = data.Runs;

        Line($"# Results: {folder}");
        Line($"");
        Line($"Written from the results store `{System.IO.Path.Combine(resultsDir, ResultsStore.FileName)}` by `{request.ReportCommand}`: every number");
        Line($"below is read from the store, and the same command writes this page again from it.");
        Line($"");
        Line($"| | |");
        Line($"|---|---|");
        Line($"| trained by | {(request.TrainedBy is { } command ? $"`{command}`" : "not recorded in the store (give it with `--command`)")} |");
        Line($"| runs | {runs.Count} finished ({runs.Count(r => r.Diverged)} diverged){(data.Unfinished > 0 ? $"; {data.Unfinished} unfinished, not shown" : "")} |");
        Line($"| schemes | {string.Join(", ", runs.OrderBy(r => r.Run.StartedAt).Select(r => r.Run.Connection).Distinct())} |");
        Line($"| depths | {string.Join(", ", data.Depths)} |");
        Line($"| seeds | {string.Join(", ", runs.Select(r => r.Run.Seed).Distinct().Order())} |");
        Line($"| ResidualLab | {Each(envs.Select(e => $"{e.Version} at commit {e.CommitDescription}"))} |");
        Line($"| CPU | {Each(envs.Select(e => e.Cpu ?? "not recorded (runs recorded before the store kept the CPU)"))} |");
        Line($"| threads per run | {Each(envs.Select(e => e.Threads).Order().Select(t => t.ToString(CultureInfo.InvariantCulture)))} |");
        Line($"| device | {Each(envs.Select(e => e.Device))} |");
        Line($"| host | {Each(envs.Select(e => e.Host))} |");
        Line($"| libtorch, TorchSharp, .NET | {Each(envs.Select(e => $"{e.LibTorch}, {e.TorchSharp}, {e.DotNet}"))} |");
        Line($"| dates (UTC) | {Dates(runs)} |");
        Line($"");

        Line($"## Final test loss");
        Line($"");
        Line($"Mean over seeds with its 95% t-interval, in nats per token; the difference from `{baseline}` at the same depth with");
        Line($"Welch's 95% interval and p.");
        Line($"");
        Line($"| group | depth | runs | diverged | test loss [95% CI] | minus {baseline} [95% CI] | p |");
        Line($"|---|---|---|---|---|---|---|");
        foreach (var r in finalLoss)
        {
            var w = r.VersusBaseline;
            Line($"| {Cell(r.Group)} | {r.Depth} | {r.Runs} | {r.Diverged} | {F(r.Loss.Mean)} [{F(r.Loss.Low)}, {F(r.Loss.High)}] | {(w is null ? "baseline" : $"{F(w.Difference, "+0.000;-0.000")} [{F(w.Low, "+0.000;-0.000")}, {F(w.High, "+0.000;-0.000")}]")} | {(w is null ? "" : P(w.P))} |");
        }

        var chosen = tuning.Where(a => a.Chosen is not null).ToList();
        if (chosen.Count > 0)
        {
            Line($"");
            Line($"## Tuned values");
            Line($"");
            Line($"Each arm's value chosen by mean validation loss over seeds; the table above reads each arm at its chosen value.");
            Line($"");
            Line($"| group | depth | chosen | validation loss | test loss | at an edge of the grid |");
            Line($"|---|---|---|---|---|---|");
            foreach (var a in chosen)
                Line($"| {Cell(a.Group)} | {a.Depth} | {Cell(a.Best!)} | {F(a.Chosen!.Val.Mean)} ± {F(a.Chosen.Val.Std)} | {F(a.Chosen.Test.Mean)} ± {F(a.Chosen.Test.Std)} | {Cell(string.Join(", ", a.Edges))} |");
        }

        Line($"");
        Line($"## Verdicts");
        Line($"");
        foreach (var r in scorecard) Line($"- **{r.Group}**: {r.Verdict}");
        foreach (var s in stability) Line($"- stability: {s}");
        foreach (var r in runs.Where(r => r.Diverged)) Line($"- diverged: {r.Run.Label} (run {r.Run.RunId}): {r.Run.Error}");
        return page.ToString();
    }

    /// <summary>The distinct values, in order of first appearance.</summary>
    static string Each(IEnumerable<string> values) => Cell(string.Join("; ", values.Distinct()));

    /// <summary>The first start and the last end among the runs, as dates.</summary>
    static string Dates(IReadOnlyList<RunData> runs)
    {
        if (runs.Count == 0) return "-";
        string first = runs.Min(r => r.Run.StartedAt).UtcDateTime.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture);
        string last = runs.Max(r => r.Run.EndedAt ?? r.Run.StartedAt).UtcDateTime.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture);
        return first == last ? first : $"{first} to {last}";
    }

    static string F(double x, string format = "0.000") => double.IsFinite(x) ? x.ToString(format, CultureInfo.InvariantCulture) : "-";

    static string P(double p) => !double.IsFinite(p) ? "-" : p < 0.001 ? "<0.001" : F(p, "0.000");

    static string Cell(string text) => text.Replace("|", "\\|", StringComparison.Ordinal).ReplaceLineEndings(" ");
}
