using System.Diagnostics;
using ResidualLab.Cluster;
using ResidualLab.Config;
using ResidualLab.Data;
using ResidualLab.Processes;
using ResidualLab.Results;
using ResidualLab.Results.Store;
using ResidualLab.Training;

namespace ResidualLab.Experiments;

/// <summary>What a sweep did: runs found finished and skipped, runs trained, and the ones left unfinished (failed or interrupted).</summary>
internal sealed record SweepOutcome(int Total, IReadOnlyList<string> Skipped, IReadOnlyList<string> Trained,
    IReadOnlyList<string> Unfinished, IReadOnlyList<string> Abandoned);

/// <summary>
/// Runs a sweep's plan on this machine, recording into the results folder's store: one run at a time in
/// this process, or N at a time as N child processes of `reslab run` (libtorch is not safe with several
/// runs' native calls and finalizers interleaved in one process). The plan is written to the folder
/// first. A run already finished there (done or diverged: training is deterministic) is skipped; a run
/// that failed, was interrupted, or was left 'running' by a killed process is trained again, from its
/// checkpoint when it has one. The sweep holds the folder's <see cref="FolderLock"/> throughout, and
/// does not start while Slurm tasks submitted for the folder are queued or running. A storage fault
/// (a full disk) stops an in-process sweep at once: the runs after it would meet it too; the store and
/// the runs finished are as they were, and running the sweep again trains the ones left.
/// </summary>
internal static class SweepRunner
{
    /// <param name="reslab">How to start child processes when <paramref name="parallel"/> is above 1.</param>
    /// <param name="beforeTraining">Called with the runs about to be trained, before the first starts (the expected wall time).</param>
    public static SweepOutcome Run(SweepPlan plan, string resultsDir, ResultsStore store, int parallel,
        Func<RunConfig, ITrainingObserver?> progress, Action<string> log, CancellationToken cancel = default,
        ReslabCommand? reslab = null, Action<IReadOnlyList<RunConfig>>? beforeTraining = null)
    {
        using var folderLock = FolderLock.Acquire(resultsDir, "a local sweep", log);
        var jobs = store.Submissions().Select(t => t.JobId).Distinct().ToList();
        if (jobs.Count > 0 && Slurm.LiveTasks(jobs) is { Count: > 0 } live)
        {
            string arrays = string.Join(" ", live.Keys.Select(k => k.Split('_')[0]).Distinct());
            throw new ConfigException(
                $"'{resultsDir}' has {live.Count} Slurm task(s) of job array {arrays} queued or running; wait for them (reslab status {resultsDir}) or cancel them (scancel {arrays}) before a local sweep");
        }
        SweepFolder.WritePlan(plan, resultsDir);
        var abandoned = store.MarkAbandoned();
        foreach (var id in abandoned) log($"run {id} was left unfinished by a process that is gone: it will be redone");

        var skipped = new List<string>();
        var todo = new List<RunConfig>();
        int finishedBefore = 0;
        foreach (var run in plan.Runs)
        {
            var record = store.Find(run.RunId);
            if (record is not null && RunState.IsFinal(record.Status)) { skipped.Add(run.RunId); finishedBefore++; }
            else if (record?.Status == RunState.Running) { skipped.Add(run.RunId); log($"run {run.RunId} ({run.Label}) is being trained by process {record.Pid}: left to it"); }
            else todo.Add(run);
        }

        if (todo.Count > 0) beforeTraining?.Invoke(todo);
        var trained = new List<string>();
        var unfinished = new List<string>();
        if (parallel <= 1) InProcess(todo, resultsDir, store, progress, log, cancel, trained, unfinished, finishedBefore);
        else InChildren(todo, resultsDir, parallel, reslab ?? ReslabCommand.Current(), log, cancel, trained, unfinished);
        return new SweepOutcome(plan.Runs.Count, skipped, trained, unfinished, abandoned);
    }

    static void InProcess(List<RunConfig> todo, string resultsDir, ResultsStore store, Func<RunConfig, ITrainingObserver?> progress,
        Action<string> log, CancellationToken cancel, List<string> trained, List<string> unfinished, int finishedBefore)
    {
        var data = new DataCache();
        foreach (var run in todo)
        {
            if (cancel.IsCancellationRequested) return;
            try
            {
                var result = RunExecutor.Execute(run, SweepFolder.RunDir(resultsDir, run.RunId), store, progress(run), data, cancel, resume: true,
                    note: line => log($"{run.Label} ({run.RunId}): {line}"));
                (result.Status == RunStatus.Cancelled ? unfinished : trained).Add(run.RunId);
                if (result.Status == RunStatus.Diverged) log($"{run.Label}: diverged ({result.Note})");
            }
            catch (StorageException ex)
            {
                int finished = finishedBefore + trained.Count;
                throw ex.With(then: $"run the same sweep again: it trains the {todo.Count - trained.Count} run(s) left",
                    kept: $"the results store and the {finished} run(s) finished are intact");
            }
            catch (Exception ex) when (ex is not ConfigException)
            {
                unfinished.Add(run.RunId);
                log($"{run.Label} ({run.RunId}) failed: {ex.Message}");
            }
        }
    }

    /// <summary>Trains each run in a `reslab run` child process, <paramref name="parallel"/> at a time; their output goes to the log.</summary>
    static void InChildren(List<RunConfig> todo, string resultsDir, int parallel, ReslabCommand reslab, Action<string> log,
        CancellationToken cancel, List<string> trained, List<string> unfinished)
    {
        var options = new ParallelOptions { MaxDegreeOfParallelism = parallel };
        Parallel.ForEach(todo, options, run =>
        {
            if (cancel.IsCancellationRequested) return;
            var clock = Stopwatch.StartNew();
            // No timeout. A stop (Ctrl-C, SIGTERM) is passed on to the children, which stop between steps and record themselves.
            var child = reslab.Run(["run", run.RunId, "--results", resultsDir,
                .. run.Threads > 0 ? new[] { "--threads", run.Threads.ToString(System.Globalization.CultureInfo.InvariantCulture) } : []],
                line => { if (line.Length > 0) log(line.StartsWith(run.Label, StringComparison.Ordinal) ? line : $"{run.Label}: {line}"); }, // its evaluations, as they come
                cancel);
            string tail = child.LastErrorLine;
            lock (trained)
            {
                if (child.ExitCode == 0) trained.Add(run.RunId);
                else
                {
                    unfinished.Add(run.RunId);
                    log($"{run.Label} ({run.RunId}) ended with exit code {child.ExitCode} after {clock.Elapsed.TotalSeconds:0} s{(tail.Length > 0 ? ": " + tail : "")}");
                }
            }
        });
    }
}
