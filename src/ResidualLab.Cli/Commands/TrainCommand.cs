using System.CommandLine;
using ResidualLab.Config;
using ResidualLab.Experiments;
using ResidualLab.Results.Store;
using ResidualLab.Training;
using Spectre.Console;

namespace ResidualLab.Cli.Commands;

/// <summary>reslab train --preset NAME | --config FILE [--set key=value ...]</summary>
internal static class TrainCommand
{
    public static Command Build()
    {
        var preset = new Option<string?>("--preset") { Description = "a shipped preset (configs/NAME.toml)" };
        var config = new Option<string?>("--config") { Description = "a TOML config file" };
        var run = new RunOptions();
        var command = new Command("train", "Train one model from a preset or a config file.");
        command.Options.Add(preset);
        command.Options.Add(config);
        run.AddTo(command);
        command.SetAction(parsed =>
        {
            string? presetName = parsed.GetValue(preset);
            string? configPath = parsed.GetValue(config);
            if (presetName is not null && configPath is not null)
                throw new ConfigException("give either --preset or --config, not both");
            var values = configPath is not null ? ConfigValues.FromTomlFile(configPath)
                : presetName is not null ? RunOptions.LoadPreset(presetName)
                : new ConfigValues();
            run.Apply(parsed, values);
            var cfg = RunConfig.From(values);
            if (values.SweepEntries.Count > 0) AnsiConsole.MarkupLine("[yellow]the config's [[sweep]] axes are ignored here: 'reslab sweep' trains the grid[/]");

            string outDir = parsed.GetValue(run.Out)!;
            string dir = Path.Combine(outDir, "runs", cfg.RunId);
            try
            {
                using var store = ResultsStore.Open(outDir);
                AnsiConsole.MarkupLineInterpolated($"[bold]{cfg.Label}[/]  run {cfg.RunId}  -> {dir}");
                var result = TerminalProgress.Track(progress => RunExecutor.Execute(cfg, dir, store, progress.For(cfg.Label)));
                Print(result);
                return result.Status == RunStatus.Done ? 0 : 1;
            }
            catch (StorageException ex)
            {
                throw Continue(ex, cfg.RunId, dir, outDir, "run the same command again", elsewhere: true);
            }
        });
        return command;
    }

    /// <summary>
    /// What to do after a storage fault stopped a run: resume it from its newest checkpoint, or, without
    /// one, <paramref name="again"/> (another results folder, when <paramref name="elsewhere"/>, starts it afresh there).
    /// </summary>
    internal static StorageException Continue(StorageException ex, string runId, string runDir, string resultsDir, string again, bool elsewhere)
    {
        bool checkpointed = TrainingCheckpoint.List(runDir).Count > 0;
        return ex.With(alternative: elsewhere && !checkpointed ? "pass --out elsewhere" : null,
            then: checkpointed ? $"'reslab resume {runId} --results {resultsDir}' continues the run" : again,
            kept: "the results store is intact");
    }

    internal static void Print(TrainResult r) => Console.WriteLine(Describe(r));

    /// <summary>A run's outcome in one line; a divergence leads with its reason and step.</summary>
    public static string Describe(TrainResult r)
    {
        var e = r.FinalEval;
        string losses = e is null ? "no evaluation" : $"train loss {e.TrainLoss:0.0000}, val loss {e.ValLoss:0.0000}{(double.IsNaN(e.TestLoss) ? "" : $", test loss {e.TestLoss:0.0000}")}";
        string outcome = r.Status == RunStatus.Diverged
            ? $"diverged: {r.Note}; last evaluation {(e is null ? "none" : $"at step {e.Step}: {losses}")}"
            : $"{r.Status.ToString().ToLowerInvariant()}: {r.Steps} steps, {losses}";
        return FormattableString.Invariant(
            $"{outcome}, {r.Parameters:N0} parameters, {r.WallSeconds:0.0} s, {r.MeanStepMs:0.0} ms/step, peak RSS {r.PeakRssBytes / 1048576.0:0} MiB");
    }
}
