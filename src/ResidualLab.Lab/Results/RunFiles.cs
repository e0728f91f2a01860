using System.Globalization;
using System.Text.Json;
using ResidualLab.Config;
using ResidualLab.Data;
using ResidualLab.Training;

namespace ResidualLab.Results;

/// <summary>
/// Writes one run's files under its folder: config.txt (canonical config), metrics.jsonl (one JSON
/// object per step or evaluation, appended line by line: a kill or a full disk cuts at most its last
/// line), result.json at the end. config.txt, result.json and metrics.jsonl as kept on resume are
/// replaced atomically. A storage fault is a <see cref="StorageException"/> naming the file.
/// </summary>
internal sealed class RunFiles : ITrainingObserver, IDisposable
{
    readonly StreamWriter _metrics;
    readonly string _metricsPath;
    readonly string _dir;
    readonly RunConfig _config;
    readonly DataIdentity? _data;
    bool _metricsFailed;

    /// <param name="resumeStep">When resuming at this step, metrics recorded at or after it are dropped.</param>
    /// <param name="data">The data the run trains on, named in result.json.</param>
    public RunFiles(string dir, RunConfig config, int? resumeStep = null, DataIdentity? data = null)
    {
        _dir = dir;
        _config = config;
        _data = data;
        StorageException.CreateFolder(dir);
        AtomicFile.WriteText(Path.Combine(dir, "config.txt"), config.FullText);
        _metricsPath = Path.Combine(dir, "metrics.jsonl");
        var kept = resumeStep is int s && File.Exists(_metricsPath)
            ? StorageException.Guard("reading", _metricsPath, () => File.ReadLines(_metricsPath).Where(line => StepOf(line) is int at && at < s).ToList())
            : [];
        // The lines kept replace the file whole, so a fault while rewriting them loses none of them.
        AtomicFile.WriteText(_metricsPath, string.Concat(kept.Select(line => line + "\n")));
        _metrics = StorageException.Guard("opening", _metricsPath, () => new StreamWriter(_metricsPath, append: true) { AutoFlush = true });
    }

    void WriteMetric(string line)
    {
        try
        {
            StorageException.Guard("writing", _metricsPath, () => _metrics.WriteLine(line));
        }
        catch (StorageException)
        {
            _metricsFailed = true;
            throw;
        }
    }

    static int? StepOf(string jsonLine)
    {
        try
        {
            using var doc = JsonDocument.Parse(jsonLine);
            return doc.RootElement.GetProperty("step").GetInt32();
        }
        catch (JsonException) { return null; } // a line cut by a kill
        catch (KeyNotFoundException) { return null; }
    }

    public void OnStep(StepMetrics s) =>
        WriteMetric(JsonSerializer.Serialize(new { kind = "step", step = s.Step, loss = s.Loss, lr = s.Lr, grad_norm = s.GradNorm, step_ms = s.StepMs }, ResultJson.Line));

    public void OnEval(EvalMetrics e) =>
        WriteMetric(JsonSerializer.Serialize(new { kind = "eval", step = e.Step, train_loss = e.TrainLoss, val_loss = e.ValLoss, test_loss = Finite(e.TestLoss) }, ResultJson.Line));

    public void OnEnd(TrainResult r)
    {
        var json = JsonSerializer.Serialize(new
        {
            run_id = _config.RunId,
            label = _config.Label,
            status = r.Status.ToString().ToLowerInvariant(),
            steps = r.Steps,
            train_loss = r.FinalEval?.TrainLoss,
            val_loss = r.FinalEval?.ValLoss,
            test_loss = Finite(r.FinalEval?.TestLoss),
            parameters = r.Parameters,
            wall_seconds = Math.Round(r.WallSeconds, 2),
            mean_step_ms = Math.Round(r.MeanStepMs, 2),
            peak_rss_mb = Math.Round(r.PeakRssBytes / 1048576.0, 1),
            note = r.Note,
            data = _data?.Name,
            data_sha256 = _data?.Sha256,
        }, ResultJson.Document);
        AtomicFile.WriteText(Path.Combine(_dir, "result.json"), json);
    }

    /// <summary>
    /// Closes metrics.jsonl. After a write to it failed, the line left in its buffer fails again here:
    /// that fault was reported already, and the file holds every line before it.
    /// </summary>
    public void Dispose()
    {
        try { _metrics.Dispose(); }
        catch (Exception e) when (_metricsFailed && StorageException.FaultOf(e) is not null) { }
    }

    /// <summary>The folder of <paramref name="run"/>: a run folder itself, or a run id under <paramref name="resultsDir"/>/runs.</summary>
    public static string FindRunFolder(string run, string resultsDir)
    {
        if (File.Exists(Path.Combine(run, "config.txt"))) return run;
        string byId = Path.Combine(resultsDir, "runs", run);
        if (File.Exists(Path.Combine(byId, "config.txt"))) return byId;
        throw new ConfigException(
            $"run '{run}' not found: it is neither a run folder nor a run id under '{Path.Combine(resultsDir, "runs")}'; give a folder holding config.txt, or pass --results DIR");
    }

    internal static string F(double x) => x.ToString("0.0000", CultureInfo.InvariantCulture);

    /// <summary>JSON has no NaN: a loss that was not measured (no test split) is written as null.</summary>
    static double? Finite(double? x) => x is { } v && double.IsFinite(v) ? v : null;
}
