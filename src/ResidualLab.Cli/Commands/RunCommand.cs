using System.CommandLine;
using System.Globalization;
using System.Runtime.InteropServices;
using ResidualLab.Experiments;
using ResidualLab.Results.Store;
using ResidualLab.Training;

namespace ResidualLab.Cli.Commands;

/// <summary>
/// reslab run ID --results DIR: trains one planned run of a sweep into the folder's store, continuing
/// from its checkpoint when it has one. The worker of `sweep --parallel N` and of every cluster task.
/// </summary>
internal static class RunCommand
{
    public static Command Build()
    {
        var id = new Argument<string>("run-id") { Description = "the id of a run planned by reslab sweep (reslab status DIR lists them)" };
        var results = new Option<string>("--results") { Description = "the sweep's results folder", DefaultValueFactory = _ => "results" };
        var threads = new Option<int?>("--threads") { Description = "intra-op CPU threads (default: the task's CPUs under Slurm, else the run's config)" };
        var command = new Command("run", "Train one planned run of a sweep by its id (the work of one cluster task).");
        command.Arguments.Add(id);
        command.Options.Add(results);
        command.Options.Add(threads);
        command.SetAction(parsed =>
        {
            string dir = parsed.GetValue(results)!;
            string runId = parsed.GetValue(id)!;
            if (!Directory.Exists(dir))
                throw new ConfigException($"results folder '{dir}' does not exist; give the folder reslab sweep planned the run in");
            int? t = parsed.GetValue(threads) ?? SlurmCpus();
            if (t is < 1) throw new ConfigException($"--threads must be at least 1, got {t}");
            var cfg = SweepFolder.Load(dir, runId, t);
            string runDir = SweepFolder.RunDir(dir, runId);

            // Ctrl-C and scancel's SIGTERM stop the run between steps; it is recorded as interrupted.
            using var stop = new StopSignals();

            try
            {
                using var store = ResultsStore.Open(dir);
                if (store.Find(runId) is { } record && RunState.IsFinal(record.Status))
                {
                    // A requeued or duplicated task: training is deterministic, a repeat would give the same numbers.
                    Console.WriteLine($"{cfg.Label}  run {cfg.RunId}: already {record.Status}, nothing to do");
                    return 0;
                }
                Console.WriteLine($"{cfg.Label}  run {cfg.RunId}  {(cfg.Threads > 0 ? $"{cfg.Threads} threads" : "libtorch's default threads")} -> {runDir}");
                var result = TerminalProgress.Track(p => RunExecutor.Execute(cfg, runDir, store, p.For(cfg.Label), cancel: stop.Token, resume: true,
                    note: line => Console.WriteLine($"{cfg.Label}  run {cfg.RunId}: {line}")));
                TrainCommand.Print(result);
                return result.Status is RunStatus.Done or RunStatus.Diverged ? 0 : 1;
            }
            catch (StorageException ex)
            {
                throw TrainCommand.Continue(ex, runId, runDir, dir, $"'reslab run {runId} --results {dir}' (or the sweep run again) trains it", elsewhere: false);
            }
        });
        return command;
    }

    /// <summary>
    /// The CPUs Slurm gave this task (one when the job asked for no number); without cgroups nothing else
    /// keeps libtorch within them. Null outside Slurm.
    /// </summary>
    static int? SlurmCpus()
    {
        if (int.TryParse(Environment.GetEnvironmentVariable("SLURM_CPUS_PER_TASK"), NumberStyles.None, CultureInfo.InvariantCulture, out int n)) return n;
        return Environment.GetEnvironmentVariable("SLURM_JOB_ID") is null ? null : 1;
    }
}
