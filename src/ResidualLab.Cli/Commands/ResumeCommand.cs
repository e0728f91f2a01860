using System.CommandLine;
using ResidualLab.Config;
using ResidualLab.Experiments;
using ResidualLab.Results;
using ResidualLab.Results.Store;
using ResidualLab.Training;

namespace ResidualLab.Cli.Commands;

/// <summary>reslab resume RUN: continue a killed run from its last checkpoint, bit for bit on CPU.</summary>
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
            var cfg = RunConfig.From(ConfigValues.FromCanonical(File.ReadAllText(configPath), configPath));
            string checkpoint = Path.Combine(dir, RunExecutor.CheckpointFile);
            int? step = TrainingCheckpoint.PeekStep(checkpoint, cfg.RunId);
            Console.WriteLine(step is int s
                ? $"{cfg.Label}  run {cfg.RunId}: resuming at step {s}/{cfg.Train.MaxIters}"
                : $"{cfg.Label}  run {cfg.RunId}: no checkpoint, starting from step 0");
            // The run folder is RESULTS/runs/ID: its results folder holds the store.
            using var store = ResultsStore.Open(Path.GetDirectoryName(Path.GetDirectoryName(Path.GetFullPath(dir)))!);
            var result = TerminalProgress.Track(p => RunExecutor.Execute(cfg, dir, p.For(cfg.Label), store: store, resume: true));
            TrainCommand.Print(result);
            return result.Status == RunStatus.Done ? 0 : 1;
        });
        return command;
    }
}
