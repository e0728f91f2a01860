using System.Diagnostics;
using System.Globalization;
using ResidualLab.Experiments;

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
        var (code, stdout, stderr) = Run(sbatch, args);
        if (code != 0)
            throw new IOException($"sbatch failed (exit {code}): {FirstLine(stderr)}");
        string jobId = stdout.Trim().Split(';')[0];
        if (!long.TryParse(jobId, NumberStyles.None, CultureInfo.InvariantCulture, out _))
            throw new IOException($"sbatch printed '{stdout.Trim()}' where a job id was expected");
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
        var (code, stdout, _) = Run(squeue, ["-h", "-r", "-o", "%F|%K|%T"]);
        if (code != 0) return null;
        var live = new Dictionary<string, string>();
        foreach (var line in stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
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

    static (int Code, string StdOut, string StdErr) Run(string file, IEnumerable<string> args)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var stderr = p.StandardError.ReadToEndAsync();
        string stdout = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        return (p.ExitCode, stdout, stderr.Result);
    }

    static string FirstLine(string text) => text.Trim().Split('\n').FirstOrDefault()?.Trim() ?? "";
}
