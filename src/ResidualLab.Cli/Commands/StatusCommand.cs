using System.CommandLine;
using ResidualLab.Cluster;
using ResidualLab.Results.Store;
using Spectre.Console;

namespace ResidualLab.Cli.Commands;

/// <summary>reslab status DIR: every run of a results folder, its state and its Slurm task.</summary>
internal static class StatusCommand
{
    public static Command Build()
    {
        var dir = new Argument<string>("dir") { Description = "a sweep's results folder (e.g. results/connections)" };
        var command = new Command("status", "Show the planned, queued, running, done, failed and diverged runs of a results folder, with their Slurm tasks.");
        command.Arguments.Add(dir);
        command.SetAction(parsed =>
        {
            string folder = parsed.GetValue(dir)!;
            if (!Directory.Exists(folder))
                throw new ConfigException($"results folder '{folder}' does not exist; give the folder a sweep wrote (e.g. results/connections)");
            using var store = ResultsStore.OpenExisting(folder);
            var views = SweepStatus.Of(folder, store, Slurm.LiveTasks(store.Submissions().Select(t => t.JobId).Distinct()));
            if (Console.IsOutputRedirected) AnsiConsole.Profile.Width = 160; // logs: one line per row
            var table = new Table();
            table.AddColumns("run", "label", "state", "slurm task", "note");
            foreach (var v in views)
                table.AddRow(new[] { v.RunId, v.Label, v.State, v.Task ?? "-", v.Note ?? "" }.Select(Markup.Escape).ToArray());
            AnsiConsole.Write(table);
            AnsiConsole.MarkupLineInterpolated($"{views.Count} runs: {string.Join(", ", views.GroupBy(v => v.State).OrderBy(g => g.Key).Select(g => $"{g.Count()} {g.Key}"))}");
            return 0;
        });
        return command;
    }
}
