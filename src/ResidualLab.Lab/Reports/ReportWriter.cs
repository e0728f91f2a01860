using ResidualLab.Experiments;
using ResidualLab.Results.Store;

namespace ResidualLab.Reports;

/// <summary>What a report wrote, the scorecard it computed (with a [tune] section: each arm at its chosen value), and the runs that diverged.</summary>
internal sealed record ReportOutput(string HtmlPath, IReadOnlyList<string> CsvPaths, IReadOnlyList<ScorecardRow> Scorecard, int Figures,
    IReadOnlyList<string> TensorBoardFiles, IReadOnlyList<RunRecord> Diverged)
{
    /// <summary>Each arm's tuned values and choice; empty without a [tune] section.</summary>
    public IReadOnlyList<ArmTuning> Tuning { get; init; } = [];

    /// <summary>One line per scheme whose verdict was judged at several budgets or initialisations.</summary>
    public IReadOnlyList<string> Stability { get; init; } = [];

    /// <summary>Where the wall-clock comparisons were measured (machine, thread counts), for the summary.</summary>
    public string WallClockNote { get; init; } = "";

    /// <summary>The widths runs with model.match_params were built with, one line per group and depth.</summary>
    public IReadOnlyList<string> Widths { get; init; } = [];

    /// <summary>The results page written with the report; null when none was asked for.</summary>
    public string? ResultsPagePath { get; init; }
}

/// <summary>
/// Reads a results folder's store and writes report.html, the CSV tables and, on request, TensorBoard
/// event files into the folder and a results page (<see cref="ResultsPage"/>), each atomically; it never writes to the store.
/// </summary>
internal static class ReportWriter
{
    public static ReportOutput Write(string resultsDir, string baseline, bool tensorBoard = false, ResultsPageRequest? page = null)
    {
        StudyData all;
        var tuned = SweepFolder.TunedKeys(resultsDir);
        using (var store = ResultsStore.OpenExisting(resultsDir)) all = StudyData.Load(store, tuned);
        var tuning = tuned.Count > 0 ? Tuning.Select(all) : [];
        var data = tuned.Count > 0 ? Tuning.AtBest(all, tuning) : all;
        if (data.Runs.Count == 0)
            throw new ConfigException($"'{resultsDir}' has no finished runs yet ({data.Unfinished} unfinished); run 'reslab sweep' first");
        if (!data.Runs.Any(r => r.Run.Connection == baseline))
            throw new ConfigException($"--baseline '{baseline}': no finished run uses it{Suggest.DidYouMean(baseline, data.Runs.Select(r => r.Run.Connection).Distinct())}; schemes here: {string.Join(", ", data.Runs.Select(r => r.Run.Connection).Distinct())}");

        var scorecard = Scorecard.Build(data, baseline);
        if (tuned.Count > 0)
            scorecard = scorecard.Select(r => r with { Verdict = r.Verdict + Tuning.Note(tuning, r.Group, r.Baseline == "-" ? null : r.Baseline, r.ComparedDepth) }).ToList();
        var stability = Stability.Lines(scorecard);
        var finalLoss = ReportTables.FinalLoss(data, baseline);
        var figures = ReportPlots.All(data).Concat(DegradationPlots.All(data)).Concat(TuningPlots.All(tuning)).ToList();
        var rankCollapse = RankCollapse.Rows(data);
        string html = Path.Combine(resultsDir, "report.html");
        AtomicFile.WriteText(html, HtmlReport.Render(data, Path.GetFullPath(resultsDir), baseline, scorecard, finalLoss, figures, tuning, stability, rankCollapse));
        var csv = new List<string>();
        void Csv(string name, string text)
        {
            string path = Path.Combine(resultsDir, name);
            AtomicFile.WriteText(path, text);
            csv.Add(path);
        }
        Csv("scorecard.csv", ReportTables.ScorecardCsv(scorecard));
        Csv("final_loss.csv", ReportTables.FinalLossCsv(finalLoss));
        Csv("runs.csv", ReportTables.RunsCsv(all));
        if (tuning.Count > 0) Csv("tuning.csv", ReportTables.TuningCsv(tuning));
        if (rankCollapse.Count > 0) Csv("stream_health.csv", RankCollapse.Csv(rankCollapse));
        var events = tensorBoard ? TensorBoardExport.Write(data, resultsDir) : [];
        if (page is not null)
        {
            if (Path.GetDirectoryName(Path.GetFullPath(page.Path)) is { } pageDir) Directory.CreateDirectory(pageDir);
            AtomicFile.WriteText(page.Path, ResultsPage.Render(data, finalLoss, scorecard, tuning, stability, baseline, resultsDir, page));
        }
        return new ReportOutput(html, csv, scorecard, figures.Count, events, all.Runs.Where(r => r.Diverged).Select(r => r.Run).ToList())
        { Tuning = tuning, Stability = stability, Widths = Widths(data), WallClockNote = EqualCompute.WallClockNote(data), ResultsPagePath = page?.Path };
    }

    /// <summary>"none L4: d_model 140, n_head 4 (head size 35), 1,234 parameters" for each group and depth whose runs matched another scheme's size.</summary>
    static IReadOnlyList<string> Widths(StudyData data) =>
        data.Runs.Where(r => double.IsFinite(r.Fact(Training.RunFact.MatchedWidth)))
            .GroupBy(r => (r.Group, r.Depth)).Select(g =>
            {
                var run = g.First();
                double d = run.Fact(Training.RunFact.MatchedWidth), h = run.Fact(Training.RunFact.MatchedHeads);
                return FormattableString.Invariant($"{g.Key.Group} L{g.Key.Depth}: d_model {d}, n_head {h} (head size {d / h:0.#}), {run.Run.Parameters:N0} parameters, to match {run.Config.GetValueOrDefault("model.match_params", "").Trim('"')}");
            }).ToList();
}
