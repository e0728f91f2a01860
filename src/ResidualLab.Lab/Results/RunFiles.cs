using System.Globalization;
using System.Text.Json;
using ResidualLab.Config;
using ResidualLab.Data;
using ResidualLab.Training;

namespace ResidualLab.Results;

/// <summary>
/// Writes one run's files under its folder: config.txt (canonical config), metrics.jsonl (one JSON
/// object per step or evaluation), result.json at the end.
/// </summary>
internal sealed class RunFiles : ITrainingObserver, IDisposable
{
    readonly StreamWriter _metrics;
    readonly string _dir;
    readonly RunConfig _config;
    readonly DataIdentity? _data;

    /// <param name="resumeStep">When resuming at this step, metrics recorded at or after it are dropped.</param>
    /// <param name="data">The data the run trains on, named in result.json.</param>
    public RunFiles(string dir, RunConfig config, int? resumeStep = null, DataIdentity? data = null)
    {
        _dir = dir;
        _config = config;
        _data = data;
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, "config.txt"), config.FullText);
        string metrics = Path.Combine(dir, "metrics.jsonl");
        var kept = resumeStep is int s && File.Exists(metrics)
            ? File.ReadLines(metrics).Where(line => StepOf(line) is int at && at < s).ToList()
            : [];
        _metrics = new StreamWriter(metrics, append: false) { AutoFlush = true }; // a kill loses at most a partial line
        foreach (var line in kept) _metrics.WriteLine(line);
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
        _metrics.WriteLine(JsonSerializer.Serialize(new { kind = "step", step = s.Step, loss = s.Loss, lr = s.Lr, grad_norm = s.GradNorm, step_ms = s.StepMs }, ResultJson.Line));

    public void OnEval(EvalMetrics e)
    {
        _metrics.WriteLine(JsonSerializer.Serialize(new { kind = "eval", step = e.Step, train_loss = e.TrainLoss, val_loss = e.ValLoss, test_loss = Finite(e.TestLoss) }, ResultJson.Line));
        _metrics.Flush();
    }

    public void OnEnd(TrainResult r)
    {
        _metrics.Flush();
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
        string tmp = Path.Combine(_dir, "result.json.tmp");
        File.WriteAllText(tmp, json);
        File.Move(tmp, Path.Combine(_dir, "result.json"), overwrite: true);
    }

    public void Dispose() => _metrics.Dispose();

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
