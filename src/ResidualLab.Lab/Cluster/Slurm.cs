using System.Globalization;
using ResidualLab.Processes;

namespace ResidualLab.Cluster;

/// <summary>
/// The Slurm client calls of a sweep: submit one job array whose task i trains the i-th run of a run
/// list written next to it, and ask squeue which tasks are still queued or running. Every task runs
/// `reslab run ID --results DIR` on whichever node it lands, so DIR must be on a shared filesystem.
/// </summary>
internal static class Slurm
{
    /// <summary>Submits the runs as one job array; returns its job id.</summary>
    public static string Submit(string resultsDir, string jobName, IReadOnlyList<string> runIds, SlurmOptions options, ReslabCommand reslab)
    {
        if (runIds.Count == 0) throw new ArgumentException("no runs to submit", nameof(runIds));
        string sbatch = OnPath("sbatch");
        string dir = Path.GetFullPath(resultsDir);
        string slurmDir = Path.Combine(dir, "slurm");
        Directory.CreateDirectory(slurmDir);
        string stamp = DateTime.UtcNow.ToString("yyyyMMdd-HHmmss-fff", CultureInfo.InvariantCulture);
        string runList = Path.Combine(slurmDir, $"array-{stamp}.runs");
        string script = Path.Combine(slurmDir, $"array-{stamp}.sh");
        File.WriteAllLines(runList, runIds);
        File.WriteAllText(script, $"""
            #!/bin/sh
            # Task i of this job array trains the run on line i+1 of the run list.
            id=$(sed -n "$((SLURM_ARRAY_TASK_ID + 1))p" {ReslabCommand.Quote(runList)})
            exec {reslab.ShellLine(["run"])} "$id" --results {ReslabCommand.Quote(dir)}

            """);

        var args = new List<string>
        {
            "--parsable", $"--array=0-{(runIds.Count - 1).ToString(CultureInfo.InvariantCulture)}",
            $"--job-name={jobName}", $"--output={Path.Combine(slurmDir, "%A_%a.out")}",
        };
        args.AddRange(options.SbatchArgs());
        args.Add(script);
        var submitted = ChildProcess.Run(sbatch, args);
        if (submitted.ExitCode != 0)
            throw new IOException($"sbatch failed (exit {submitted.ExitCode}): {FirstLine(submitted.StdErr)}");
        string jobId = submitted.StdOut.Trim().Split(';')[0];
        if (!long.TryParse(jobId, NumberStyles.None, CultureInfo.InvariantCulture, out _))
            throw new IOException($"sbatch printed '{submitted.StdOut.Trim()}' where a job id was expected");
        return jobId;
    }

    /// <summary>
    /// States of the queued and running tasks of the given job arrays, by task name (JOBID_TASK):
    /// PENDING, RUNNING, ...; null when squeue is not available here.
    /// </summary>
    public static IReadOnlyDictionary<string, string>? LiveTasks(IEnumerable<string> jobIds)
    {
        var wanted = jobIds.ToHashSet();
        if (FindOnPath("squeue") is not { } squeue) return null;
        var queue = ChildProcess.Run(squeue, ["-h", "-r", "-o", "%F|%K|%T"]);
        if (queue.ExitCode != 0) return null;
        var live = new Dictionary<string, string>();
        foreach (var line in queue.StdOut.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var parts = line.Split('|');
            if (parts.Length == 3 && wanted.Contains(parts[0])) live[$"{parts[0]}_{parts[1]}"] = parts[2];
        }
        return live;
    }

    static string OnPath(string tool) => FindOnPath(tool) ?? throw new ConfigException(
        $"{tool} not found on PATH: --runner slurm needs the Slurm client tools (run on a login node of the cluster, or start a local one with scripts/slurm-local.sh start)");

    static string? FindOnPath(string tool) => (Environment.GetEnvironmentVariable("PATH") ?? "")
        .Split(':', StringSplitOptions.RemoveEmptyEntries)
        .Select(dir => Path.Combine(dir, tool))
        .FirstOrDefault(File.Exists);

    static string FirstLine(string text) => text.Trim().Split('\n').FirstOrDefault()?.Trim() ?? "";
}
