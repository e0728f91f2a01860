using System.CommandLine;
using System.Diagnostics;
using ResidualLab.Cluster;
using ResidualLab.Config;
using ResidualLab.Data;
using ResidualLab.Experiments;
using ResidualLab.Processes;
using ResidualLab.Results;
using ResidualLab.Results.Store;
using Spectre.Console;

namespace ResidualLab.Cli.Commands;

/// <summary>
/// reslab sweep FILE [--parallel N] [--runner slurm ...]: expands the [sweep] grid and trains the runs not
/// yet done, here (one at a time, or N child processes) or as one Slurm job array.
/// </summary>
internal static class SweepCommand
{
    public static Command Build()
    {
        var file = new Argument<string>("file") { Description = "a TOML run config with a [sweep] section of axes (a file, or a preset's name: connections)" };
        var parallel = new Option<int>("--parallel") { Description = StudyLayoutOption.Description, DefaultValueFactory = _ => 0 };
        var runner = new Option<string>("--runner") { Description = "where the runs train: local (this machine) or slurm (one job array)", DefaultValueFactory = _ => "local" };
        runner.AcceptOnlyFromAmong("local", "slurm");
        var partition = new Option<string?>("--partition") { Description = "slurm: the partition of the tasks" };
        var time = new Option<string?>("--time") { Description = "slurm: each task's time limit (90, 1:30:00, 2-00:00:00)" };
        var cpus = new Option<int?>("--cpus-per-task") { Description = "slurm: CPUs per task, also the task's thread count" };
        var gpus = new Option<int?>("--gpus") { Description = "slurm: GPUs per task (--gres=gpu:G; train with --device cuda)" };
        var retryFailed = new Option<bool>("--retry-failed") { Description = "slurm: resubmit only the failed and interrupted runs" };
        var noEstimate = new Option<bool>("--no-estimate") { Description = "local: start at once, without timing each model for the expected wall time" };
        var run = new RunOptions();
        var command = new Command("sweep", "Train a grid of runs (scheme x depth x seed x any key); finished runs are skipped.");
        command.Arguments.Add(file);
        foreach (var option in new Option[] { parallel, runner, partition, time, cpus, gpus, retryFailed, noEstimate }) command.Options.Add(option);
        run.AddTo(command);
        command.SetAction(parsed =>
        {
            string path = ResolveFile(parsed.GetValue(file)!);
            int n = parsed.GetValue(parallel);
            if (n < 0) throw new ConfigException($"--parallel must be 0 (auto) or at least 1, got {n}");
            bool slurm = parsed.GetValue(runner) == "slurm";
            var slurmOptions = new SlurmOptions(parsed.GetValue(partition), parsed.GetValue(time), parsed.GetValue(cpus), parsed.GetValue(gpus)).Checked();
            if (slurm && n > 1)
                throw new ConfigException("--parallel goes with --runner local; on Slurm every run is its own task and the cluster runs as many at once as it has room for");
            if (!slurm && (slurmOptions != new SlurmOptions() || parsed.GetValue(retryFailed)))
                throw new ConfigException("--partition, --time, --cpus-per-task, --gpus and --retry-failed go with --runner slurm");
            var values = ConfigValues.FromTomlFile(path);
            run.Apply(parsed, values);
            var layout = slurm ? new StudyLayout(1, 0) : StudyLayoutOption.Resolve(n, values);
            var plan = SweepGrid.Expand(values);
            string outDir = Path.Combine(parsed.GetValue(run.Out)!, Path.GetFileNameWithoutExtension(path));
            if (Console.IsOutputRedirected) AnsiConsole.Profile.Width = 160; // logs: one line per message
            try
            {
                return slurm
                    ? Submit(plan, Path.GetFullPath(outDir), Path.GetFileNameWithoutExtension(path), slurmOptions, parsed.GetValue(retryFailed))
                    : RunHere(plan, outDir, Path.GetFileName(path), layout, !parsed.GetValue(noEstimate));
            }
            catch (StorageException ex) when (ex.Then is null) // a fault before any run trained
            {
                throw ex.With(then: "run the same sweep again", kept: "the results store is intact");
            }
        });
        return command;
    }

    /// <summary>A sweep file's path: the file itself, or the preset of that name; a one-line error when neither exists.</summary>
    internal static string ResolveFile(string path)
    {
        string preset = Path.Combine(RunOptions.PresetFolder, path + ".toml");
        if (!File.Exists(path) && File.Exists(preset)) return preset;
        if (File.Exists(path)) return path;
        var presets = RunOptions.PresetNames();
        throw new ConfigException($"sweep file '{path}' does not exist{Suggest.DidYouMean(path, presets)}; give a TOML file or a preset: {string.Join(", ", presets)}");
    }

    static int RunHere(SweepPlan plan, string outDir, string name, StudyLayout layout, bool estimate)
    {
        int n = layout.Parallel;
        using var store = ResultsStore.Open(outDir);
        using var stop = new StopSignals(); // Ctrl-C or SIGTERM: the runs in flight stop between steps and are kept to resume
        AnsiConsole.MarkupLineInterpolated($"[bold]sweep {name}[/]: {plan.Runs.Count} runs ({SweepGrid.Describe(plan.Axes, plan.TunedKeys)}), {layout} -> {store.FilePath}");
        var clock = Stopwatch.StartNew();
        var outcome = TerminalProgress.Track(progress => SweepRunner.Run(plan, outDir, store, n,
            cfg => progress.For($"{cfg.Label} {cfg.RunId}"), line => AnsiConsole.WriteLine(line), stop.Token,
            beforeTraining: estimate ? todo => PrintEstimate(todo, n) : null));
        AnsiConsole.MarkupLineInterpolated(
            $"{outcome.Total} runs: {outcome.Skipped.Count} already finished (skipped), {outcome.Trained.Count} trained, {outcome.Unfinished.Count} unfinished, in {clock.Elapsed.TotalSeconds:0} s");
        var states = store.Runs().Where(r => plan.Runs.Any(p => p.RunId == r.RunId)).GroupBy(r => r.Status)
            .Select(g => $"{g.Count()} {g.Key}");
        string next = outcome.Unfinished.Count == 0 ? ""
            : $"run the same sweep again to train the {outcome.Unfinished.Count} unfinished run(s), each from its newest checkpoint; then ";
        AnsiConsole.MarkupLineInterpolated($"store: {string.Join(", ", states)}. Next: {next}reslab report {outDir}");
        return outcome.Unfinished.Count == 0 ? 0 : 1;
    }

    /// <summary>Times each model of the runs about to train and prints the sweep's expected wall time.</summary>
    internal static void PrintEstimate(IReadOnlyList<RunConfig> todo, int parallel) =>
        AnsiConsole.MarkupLineInterpolated($"{SweepEstimate.For(todo, parallel, new DataCache()).Describe(parallel)}");

    /// <summary>Plans the sweep in the results folder and submits its unfinished runs as one Slurm job array.</summary>
    static int Submit(SweepPlan plan, string outDir, string name, SlurmOptions options, bool retryFailed)
    {
        using var folderLock = FolderLock.Acquire(outDir, "a Slurm submission", line => AnsiConsole.WriteLine(line));
        using var store = ResultsStore.Open(outDir);
        SweepFolder.WritePlan(plan, outDir);
        var views = SweepStatus.Of(outDir, store, Slurm.LiveTasks(store.Submissions().Select(t => t.JobId).Distinct()))
            .Where(v => plan.Runs.Any(p => p.RunId == v.RunId)).ToList();
        var ids = SweepStatus.ToSubmit(plan, views, retryFailed);
        string summary = string.Join(", ", views.GroupBy(v => v.State).OrderBy(g => g.Key).Select(g => $"{g.Count()} {g.Key}"));
        if (ids.Count == 0)
        {
            AnsiConsole.MarkupLineInterpolated($"sweep {name}: nothing to submit ({summary}). Next: reslab status {outDir}");
            return 0;
        }
        string jobId = Slurm.Submit(outDir, $"reslab-{name}", ids, options, ReslabCommand.Current());
        store.RecordSubmission(jobId, ids);
        AnsiConsole.MarkupLineInterpolated(
            $"sweep {name}: {plan.Runs.Count} runs ({summary}); submitted {ids.Count} as Slurm job array {jobId} (tasks 0-{ids.Count - 1}) -> {outDir}");
        AnsiConsole.MarkupLineInterpolated($"Next: reslab status {outDir}");
        return 0;
    }
}
