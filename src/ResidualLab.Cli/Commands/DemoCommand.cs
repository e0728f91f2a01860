using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using ResidualLab.Data;
using ResidualLab.Experiments;
using ResidualLab.Families;
using ResidualLab.Results.Store;
using ResidualLab.Training;
using Spectre.Console;

namespace ResidualLab.Cli.Commands;

/// <summary>
/// reslab demo: the seed experiment. The same Transformer with and without the residual, same seed,
/// data and budget, at depth 1 and a deeper setting; prints the table and writes it under results/.
/// </summary>
internal static class DemoCommand
{
    public const string Preset = "seed-1layer";

    public static Command Build()
    {
        var depths = new Option<string>("--depths") { Description = "comma-separated depths (n_layer)", DefaultValueFactory = _ => "1,6" };
        var seeds = new Option<int>("--seeds") { Description = "seeds per cell (1..K); K >= 2 gives mean and spread", DefaultValueFactory = _ => 1 };
        var run = new RunOptions();
        var command = new Command("demo", $"With vs without the residual (preset '{Preset}'): the main job.");
        command.Options.Add(depths);
        command.Options.Add(seeds);
        run.AddTo(command);
        command.Subcommands.Add(DegradationCommand.Build());
        command.SetAction(parsed =>
        {
            var depthList = ParseDepths(parsed.GetValue(depths)!);
            int k = parsed.GetValue(seeds);
            if (k < 1) throw new ConfigException($"--seeds must be at least 1, got {k}");
            var values = RunOptions.LoadPreset(Preset);
            run.Apply(parsed, values);
            var grid = ResidualAblation.Grid(values, depthList, Enumerable.Range(1, k).Select(s => (long)s).ToList());
            string outDir = Path.Combine(parsed.GetValue(run.Out)!, "demo");

            var first = grid[0];
            var gpt = first.Settings<GptSettings>();
            AnsiConsole.MarkupLineInterpolated(
                $"[bold]With vs without the residual[/]: {grid.Count} runs, depths {string.Join(",", depthList)}, {k} seed(s); d_model {gpt.Shape.DModel}, n_head {gpt.Shape.NHead}, block_size {gpt.Shape.BlockSize}, batch {first.Train.BatchSize}, {first.Train.MaxIters} steps, lr {first.Train.Lr}");
            var data = new DataCache();
            var corpus = data.Corpus(gpt.Data, gpt.Shape.BlockSize);
            AnsiConsole.MarkupLineInterpolated($"corpus {corpus.Source}: {corpus.Train.Length + corpus.Val.Length + corpus.Test.Length:N0} tokens ({corpus.Tokenizer.Spec}), vocabulary {corpus.VocabSize}");

            using var store = ResultsStore.Open(outDir);
            var clock = Stopwatch.StartNew();
            var runs = TerminalProgress.Track(progress => grid.Select(cfg =>
            {
                string dir = Path.Combine(outDir, "runs", cfg.RunId);
                var result = RunExecutor.Execute(cfg, dir, store, progress.For(cfg.Label), data);
                return new AblationRun(cfg, result);
            }).ToList());

            var rows = ResidualAblation.Table(runs);
            var table = new Table().AddColumns("depth", "test loss with (pre-norm)", "test loss without (none)", "difference");
            foreach (var r in rows)
                table.AddRow(r.Depth.ToString(CultureInfo.InvariantCulture), r.With.Show(), r.Without.Show(), r.Difference.ToString("+0.0000;-0.0000", CultureInfo.InvariantCulture));
            AnsiConsole.Write(table);
            Directory.CreateDirectory(outDir);
            AtomicFile.WriteText(Path.Combine(outDir, "summary.csv"), ResidualAblation.ToCsv(rows));
            var diverged = runs.Where(r => r.Result.Status != RunStatus.Done).ToList();
            foreach (var d in diverged)
                AnsiConsole.MarkupLineInterpolated($"[yellow]{d.Config.Label}: {d.Result.Status} ({d.Result.Note})[/]");
            AnsiConsole.MarkupLineInterpolated(
                $"published (1 layer): 1.70 with, 2.47 without. {grid.Count} runs in {clock.Elapsed.TotalSeconds:0} s, peak RSS {ProcessMemory.PeakRssBytes() / 1048576.0:0} MiB; table in {Path.Combine(outDir, "summary.csv")}");
            AnsiConsole.MarkupLineInterpolated(
                $"This answer is for one learning rate ({first.Train.Lr}), one init ({Layers.Init.Name(gpt.Shape.Init)}) and one budget ({first.Train.MaxIters} steps); for the answer across inits, learning rates and budgets: reslab study necessity");
            return diverged.Count == 0 ? 0 : 1;
        });
        return command;
    }

    static List<int> ParseDepths(string text)
    {
        var depths = new List<int>();
        foreach (var part in text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (!int.TryParse(part, NumberStyles.Integer, CultureInfo.InvariantCulture, out int d) || d < 1)
                throw new ConfigException($"--depths '{text}': '{part}' is not a positive integer; e.g. --depths 1,6,12");
            depths.Add(d);
        }
        if (depths.Count == 0) throw new ConfigException("--depths is empty; e.g. --depths 1,6");
        return depths;
    }
}
