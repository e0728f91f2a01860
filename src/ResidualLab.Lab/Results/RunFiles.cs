using System.Text;
using System.Text.Json;
using ResidualLab.Config;
using ResidualLab.Results.Store;

namespace ResidualLab.Results;

/// <summary>
/// A run's folder. Training writes into it the run's definition (config.txt, canonical config) and its artefacts
/// (checkpoints, the model, a tokenizer, data.json); its results go only to the results store, and the folder's
/// result files are exports of the store, written when the run ends and again by <c>reslab export RUN --format
/// results</c>: metrics.jsonl (every step, evaluation and reading, one JSON object per line) and result.json (the
/// run's outcome and facts). They can never disagree with the store, and a lost or damaged one is written again.
/// Every file is replaced atomically; a storage fault is a <see cref="StorageException"/> naming the file.
/// </summary>
internal static class RunFiles
{
    public const string Config = "config.txt", Metrics = "metrics.jsonl", Result = "result.json";

    /// <summary>Writes the run's definition into its folder (created if needed).</summary>
    public static void WriteDefinition(string dir, RunConfig config)
    {
        StorageException.CreateFolder(dir);
        AtomicFile.WriteText(Path.Combine(dir, Config), config.FullText);
    }

    /// <summary>Writes metrics.jsonl and result.json of run <paramref name="runId"/> from <paramref name="store"/> into <paramref name="dir"/>.</summary>
    /// <exception cref="ConfigException">The store has no such run.</exception>
    public static void Export(ResultsStore store, string runId, string dir)
    {
        var run = store.Find(runId) ?? throw new ConfigException($"run {runId} is not in {store.FilePath}; give the results folder it was trained into (--results)");
        var labels = store.Labels(runId);
        var lines = new List<(int Step, int Order, string Json)>();
        foreach (var s in store.Steps(runId))
            lines.Add((s.Step, 0, JsonSerializer.Serialize(new { kind = "step", step = s.Step, loss = s.Loss, lr = s.Lr, grad_norm = s.GradNorm, step_ms = s.StepMs }, ResultJson.Line)));
        foreach (var e in store.Evals(runId))
            lines.Add((e.Step, 1, JsonSerializer.Serialize(new { kind = "eval", step = e.Step, train_loss = e.TrainLoss, val_loss = e.ValLoss, test_loss = Finite(e.TestLoss) }, ResultJson.Line)));
        foreach (var d in store.Diagnostics(runId))
            lines.Add((d.Step, 2, JsonSerializer.Serialize(new
            {
                kind = "reading", step = d.Step, name = d.Name, index = d.Index,
                label = labels.GetValueOrDefault((d.Name, d.Index)), value = d.Value
            }, ResultJson.Line)));
        var metrics = new StringBuilder();
        foreach (var line in lines.OrderBy(l => l.Step).ThenBy(l => l.Order)) metrics.Append(line.Json).Append('\n');
        AtomicFile.WriteText(Path.Combine(dir, Metrics), metrics.ToString());

        var environment = store.EnvironmentOf(runId);
        var json = JsonSerializer.Serialize(new
        {
            run_id = run.RunId,
            label = run.Label,
            model = run.Model,
            connection = run.Connection,
            depth = run.Depth,
            seed = run.Seed,
            status = run.Status,
            steps = run.Steps,
            train_loss = run.TrainLoss ?? double.NaN,   // NaN: not measured, or not finite (the store keeps NaN as NULL)
            val_loss = run.ValLoss ?? double.NaN,
            test_loss = Finite(run.TestLoss),
            parameters = run.Parameters,
            wall_seconds = run.EndedAt is { } end ? Math.Round((end - run.StartedAt).TotalSeconds, 2) : (double?)null,
            mean_step_ms = Math.Round(run.MeanStepMs, 2),
            peak_rss_mb = Math.Round(run.PeakRssBytes / 1048576.0, 1),
            note = run.Error,
            data = run.DataName,
            data_sha256 = run.DataSha256,
            facts = store.Facts(runId),
            commit = environment?.CommitDescription,
        }, ResultJson.Document);
        AtomicFile.WriteText(Path.Combine(dir, Result), json);
    }

    /// <summary>The results folder a run folder of <c>RESULTS/runs/ID</c> belongs to.</summary>
    public static string ResultsFolderOf(string runDir) => Path.GetFullPath(Path.Combine(runDir, "..", ".."));

    /// <summary>The folder of <paramref name="run"/>: a run folder itself, or a run id under <paramref name="resultsDir"/>/runs.</summary>
    public static string FindRunFolder(string run, string resultsDir)
    {
        if (File.Exists(Path.Combine(run, Config))) return run;
        string byId = Path.Combine(resultsDir, "runs", run);
        if (File.Exists(Path.Combine(byId, Config))) return byId;
        throw new ConfigException(
            $"run '{run}' not found: it is neither a run folder nor a run id under '{Path.Combine(resultsDir, "runs")}'; give a folder holding config.txt, or pass --results DIR");
    }

    /// <summary>JSON has no NaN: a loss that was not measured (no test split) is written as null.</summary>
    static double? Finite(double? x) => x is { } v && double.IsFinite(v) ? v : null;
}
