using ResidualLab.Experiments.Store;

namespace ResidualLab.Reports;

/// <summary>What a report wrote, the scorecard it computed, and the runs that diverged.</summary>
public sealed record ReportOutput(string HtmlPath, IReadOnlyList<string> CsvPaths, IReadOnlyList<ScorecardRow> Scorecard, int Figures,
    IReadOnlyList<string> TensorBoardFiles, IReadOnlyList<RunRecord> Diverged);

/// <summary>Reads a results folder's store and writes report.html, the CSV tables and, on request, TensorBoard event files into the folder.</summary>
public static class ReportWriter
{
    public static ReportOutput Write(string resultsDir, string baseline, bool tensorBoard = false)
    {
        StudyData data;
        using (var store = ResultsStore.OpenExisting(resultsDir)) data = StudyData.Load(store);
        if (data.Runs.Count == 0)
            throw new ConfigException($"'{resultsDir}' has no finished runs yet ({data.Unfinished} unfinished); run 'reslab sweep' first");
        if (!data.Runs.Any(r => r.Run.Connection == baseline))
            throw new ConfigException($"--baseline '{baseline}': no finished run uses it{Suggest.DidYouMean(baseline, data.Runs.Select(r => r.Run.Connection).Distinct())}; schemes here: {string.Join(", ", data.Runs.Select(r => r.Run.Connection).Distinct())}");

        var scorecard = Scorecard.Build(data, baseline);
        var finalLoss = ReportTables.FinalLoss(data, baseline);
        var figures = ReportPlots.All(data);
        string html = Path.Combine(resultsDir, "report.html");
        File.WriteAllText(html, HtmlReport.Render(data, Path.GetFullPath(resultsDir), baseline, scorecard, finalLoss, figures));
        var csv = new List<string>();
        void Csv(string name, string text)
        {
            string path = Path.Combine(resultsDir, name);
            File.WriteAllText(path, text);
            csv.Add(path);
        }
        Csv("scorecard.csv", ReportTables.ScorecardCsv(scorecard));
        Csv("final_loss.csv", ReportTables.FinalLossCsv(finalLoss));
        Csv("runs.csv", ReportTables.RunsCsv(data));
        var events = tensorBoard ? TensorBoardExport.Write(data, resultsDir) : [];
        return new ReportOutput(html, csv, scorecard, figures.Count, events, data.Runs.Where(r => r.Diverged).Select(r => r.Run).ToList());
    }
}
