using System.CommandLine;
using System.Globalization;
using ResidualLab.Reports;
using Spectre.Console;

namespace ResidualLab.Cli.Commands;

/// <summary>reslab report DIR [--baseline NAME] [--tensorboard] [--markdown FILE [--command TEXT]]: report.html, the CSV tables and the
/// scorecard of a results folder, and a results page for docs/results/.</summary>
internal static class ReportCommand
{
    public static Command Build()
    {
        var dir = new Argument<string>("dir") { Description = "a results folder holding results.db (e.g. results/connections)" };
        var baseline = new Option<string>("--baseline") { Description = "the scheme every other is judged against", DefaultValueFactory = _ => "pre-norm" };
        var command = new Command("report", "Write a self-contained HTML report and CSV tables, and print the necessity scorecard.");
        command.Arguments.Add(dir);
        var tensorBoard = new Option<bool>("--tensorboard") { Description = "also write TensorBoard event files (DIR/tensorboard/)" };
        var markdown = new Option<string?>("--markdown")
        {
            Description = "also write a results page (markdown) to this file: the runs' commits, CPUs, threads and dates, the final test losses and the verdicts, all from the store",
        };
        var trainedBy = new Option<string?>("--command")
        {
            Description = "with --markdown: the command that trained the runs, for the page (the store does not record it)",
        };
        command.Options.Add(baseline);
        command.Options.Add(tensorBoard);
        command.Options.Add(markdown);
        command.Options.Add(trainedBy);
        command.SetAction(parsed =>
        {
            string folder = parsed.GetValue(dir)!;
            if (!Directory.Exists(folder))
                throw new ConfigException($"results folder '{folder}' does not exist; give the folder a sweep wrote (e.g. results/connections)");
            string scheme = parsed.GetValue(baseline)!;
            if (parsed.GetValue(trainedBy) is not null && parsed.GetValue(markdown) is null)
                throw new ConfigException("--command names the command that trained the runs on a results page: give --markdown FILE too");
            var page = parsed.GetValue(markdown) is { } file
                ? new ResultsPageRequest(file, $"reslab report {folder}{(scheme == "pre-norm" ? "" : $" --baseline {scheme}")} --markdown {file}", parsed.GetValue(trainedBy))
                : null;
            ReportOutput output;
            try
            {
                output = ReportWriter.Write(folder, scheme, parsed.GetValue(tensorBoard), page);
            }
            catch (StorageException ex)
            {
                throw ex.With(then: $"run 'reslab report {folder}' again", kept: "the results store is unchanged (a report only reads it)");
            }
            if (Console.IsOutputRedirected) AnsiConsole.Profile.Width = 160; // logs: one line per row
            AnsiConsole.Write(ScorecardTable(output.Scorecard));
            foreach (var r in output.Scorecard) AnsiConsole.MarkupLineInterpolated($"[bold]{r.Group}[/]: {r.Verdict}");
            foreach (var r in output.Diverged) AnsiConsole.MarkupLineInterpolated($"[yellow]diverged[/]: {r.Label} (run {r.RunId}): {r.Error}");
            if (output.Scorecard.Any(r => r.EqualFlops is not null || r.EqualTime is not null))
                AnsiConsole.MarkupLineInterpolated($"equal compute: validation loss at the largest training FLOPs and wall-clock every compared run reached (the test split is read at the end only; the verdict's headline stays on test loss). {output.WallClockNote}");
            foreach (var line in output.Stability) AnsiConsole.MarkupLineInterpolated($"stability: {line}");
            foreach (var line in output.Widths) AnsiConsole.MarkupLineInterpolated($"equal size: {line}");
            foreach (var arm in output.Tuning.Where(a => a.Chosen is not null))
                AnsiConsole.MarkupLineInterpolated(
                    $"tuned {arm.Group} L{arm.Depth}: {arm.Best} by validation ({F(arm.Chosen!.Val.Mean, "0.000")} ± {F(arm.Chosen.Val.Std, "0.000")}; test {F(arm.Chosen.Test.Mean, "0.000")}){(arm.Edges.Count > 0 ? $"; {string.Join(", ", arm.Edges)}: the optimum may lie outside the grid" : "")}");
            AnsiConsole.MarkupLineInterpolated($"report: {output.HtmlPath} ({output.Figures} figures); tables: {string.Join(", ", output.CsvPaths.Select(Path.GetFileName))}");
            if (output.ResultsPagePath is { } written) AnsiConsole.MarkupLineInterpolated($"results page: {written}");
            if (output.TensorBoardFiles.Count > 0)
                AnsiConsole.MarkupLineInterpolated($"TensorBoard: {output.TensorBoardFiles.Count} event files under {Path.Combine(folder, "tensorboard")} (tensorboard --logdir {Path.Combine(folder, "tensorboard")})");
            return 0;
        });
        return command;
    }

    static Table ScorecardTable(IReadOnlyList<ScorecardRow> rows)
    {
        var table = new Table { Title = new TableTitle("Necessity scorecard (difference = scheme - baseline, final test loss, nats)") };
        table.AddColumns("scheme", "L", "test loss", "diff [[95% CI]]", "p", "diverged", "grad spike", "slope/ln L", "tput", "mem", "params",
            "FLOPs/step", "val diff eq. FLOPs", "val diff eq. time");
        foreach (var r in rows)
        {
            var d = r.Difference;
            table.AddRow(new[] { r.Group, r.ComparedDepth?.ToString(CultureInfo.InvariantCulture) ?? "-", F(r.Loss.Mean, "0.000"),
                d is null ? "-" : $"{F(d.Difference, "+0.000;-0.000")} [{F(d.Low, "+0.00;-0.00")}, {F(d.High, "+0.00;-0.00")}]",
                d is null ? "-" : d.P < 0.001 ? "<0.001" : F(d.P, "0.000"),
                $"{r.Diverged}/{r.Finished}", $"{F(r.WorstGradSpike, "0.0")}x", F(r.DepthSlope, "+0.000;-0.000"),
                $"{F(r.ThroughputRatio, "0.00")}x", $"{F(r.MemoryRatio, "0.00")}x", r.Parameters.ToString("N0", CultureInfo.InvariantCulture),
                double.IsFinite(r.FlopsRatio) ? $"{F(r.FlopsRatio, "0.00")}x" : "-", Equal(r.EqualFlops), Equal(r.EqualTime) }.Select(Markup.Escape).ToArray());
        }
        return table;
    }

    static string Equal(EqualBudget? e) => e?.Difference is { } d ? $"{F(d.Difference, "+0.000;-0.000")} [{F(d.Low, "+0.00;-0.00")}, {F(d.High, "+0.00;-0.00")}]"
        : e is null ? "-" : $"{F(e.Loss.Mean - e.BaselineLoss.Mean, "+0.000;-0.000")}";

    static string F(double x, string format) => double.IsFinite(x) ? x.ToString(format, CultureInfo.InvariantCulture) : "-";
}
