using System.CommandLine;
using ResidualLab.Config;
using ResidualLab.Experiments;
using ResidualLab.Results;
using ResidualLab.Results.Store;
using ResidualLab.Training;
using Spectre.Console;

namespace ResidualLab.Cli.Commands;

/// <summary>
/// reslab resume RUN: continue a killed run from its newest checkpoint that verifies, bit for bit on CPU;
/// each newer one that does not verify is named in one line with why, and none verifying is refused.
/// </summary>
internal static class ResumeCommand
{
    public static Command Build()
    {
        var run = new Argument<string>("run") { Description = "run folder, or run id under --results" };
        var results = new Option<string>("--results") { Description = "results folder", DefaultValueFactory = _ => "results" };
        var command = new Command("resume", "Continue a killed run from its last checkpoint.");
        command.Arguments.Add(run);
        command.Options.Add(results);
        command.SetAction(parsed =>
        {
            string dir = RunFiles.FindRunFolder(parsed.GetValue(run)!, parsed.GetValue(results)!);
            string configPath = Path.Combine(dir, "config.txt");
            var cfg = RunConfig.From(ConfigValues.FromCanonical(StorageException.Guard("reading", configPath, () => File.ReadAllText(configPath)), configPath));
            void Note(string line) => AnsiConsole.WriteLine($"{cfg.Label}  run {cfg.RunId}: {line}");
            if (TrainingCheckpoint.List(dir).Count == 0) Note("no checkpoint, starting from step 0");
            // The run folder is RESULTS/runs/ID: its results folder holds the store.
            string resultsDir = Path.GetDirectoryName(Path.GetDirectoryName(Path.GetFullPath(dir)))!;
            try
            {
                using var store = ResultsStore.Open(resultsDir);
                var result = TerminalProgress.Track(p => RunExecutor.Execute(cfg, dir, store, p.For(cfg.Label), resume: true, note: Note));
                TrainCommand.Print(result);
                return result.Status == RunStatus.Done ? 0 : 1;
            }
            catch (StorageException ex)
            {
                throw TrainCommand.Continue(ex, cfg.RunId, dir, resultsDir, "run the same command again", elsewhere: false);
            }
        });
        return command;
    }
}
