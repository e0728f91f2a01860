using ResidualLab.Config;

namespace ResidualLab.Experiments;

/// <summary>
/// A sweep's plan kept in its results folder: each planned run's config as runs/ID/config.txt, written
/// when the sweep is planned, so any process that sees the folder (a child process, a cluster task on
/// another machine) can train one run by its id alone.
/// </summary>
internal static class SweepFolder
{
    public static string RunDir(string resultsDir, string runId) => Path.Combine(resultsDir, "runs", runId);

    /// <summary>The file that names a folder's [tune] keys, one per line, for reports.</summary>
    public const string TunedFile = "tuned.txt";

    /// <summary>The [tune] keys a sweep planned in this folder had (none when it had no [tune] section).</summary>
    public static IReadOnlyList<string> TunedKeys(string resultsDir)
    {
        string path = Path.Combine(resultsDir, TunedFile);
        return File.Exists(path) ? File.ReadAllLines(path).Where(l => l.Length > 0).ToList() : [];
    }

    /// <summary>Writes the config of every run of the plan (atomically: a reader sees the old or the new file), and the tuned keys.</summary>
    public static void WritePlan(SweepPlan plan, string resultsDir)
    {
        StorageException.CreateFolder(resultsDir);
        string tuned = Path.Combine(resultsDir, TunedFile);
        if (plan.TunedKeys.Count > 0) AtomicFile.WriteText(tuned, string.Concat(plan.TunedKeys.Select(k => k + "\n")));
        else StorageException.Guard("deleting", tuned, () => File.Delete(tuned));
        foreach (var run in plan.Runs)
        {
            string dir = RunDir(resultsDir, run.RunId);
            StorageException.CreateFolder(dir);
            AtomicFile.WriteText(Path.Combine(dir, "config.txt"), run.FullText);
        }
    }

    /// <summary>The config of a planned run, with train.threads replaced when <paramref name="threads"/> is given.</summary>
    public static RunConfig Load(string resultsDir, string runId, int? threads = null)
    {
        string path = Path.Combine(RunDir(resultsDir, runId), "config.txt");
        if (!File.Exists(path))
        {
            var ids = PlannedRunIds(resultsDir);
            throw new ConfigException(ids.Count == 0
                ? $"'{resultsDir}' holds no planned runs; plan them with reslab sweep FILE --out ..."
                : $"unknown run id '{runId}' in '{resultsDir}'{Suggest.DidYouMean(runId, ids)}; its {ids.Count} runs are listed by reslab status {resultsDir}");
        }
        var values = ConfigValues.FromCanonical(File.ReadAllText(path), path);
        if (threads is int t) values.Set("train.threads", (long)t, "--threads");
        var config = RunConfig.From(values);
        if (config.RunId != runId)
            throw new ConfigException($"{path} describes run {config.RunId}, not {runId}: the folder was edited by hand");
        return config;
    }

    /// <summary>Ids of the runs planned in a results folder, sorted.</summary>
    public static IReadOnlyList<string> PlannedRunIds(string resultsDir)
    {
        string runs = Path.Combine(resultsDir, "runs");
        return Directory.Exists(runs)
            ? Directory.GetDirectories(runs).Where(d => File.Exists(Path.Combine(d, "config.txt")))
                .Select(Path.GetFileName).OfType<string>().Order(StringComparer.Ordinal).ToList()
            : [];
    }
}
