using System.Text.Json;
using ResidualLab.Cli.Commands;
using ResidualLab.Config;
using ResidualLab.Data;
using ResidualLab.Experiments;
using ResidualLab.Reports;
using ResidualLab.Results;
using ResidualLab.Results.Store;
using ResidualLab.Tests.Data;
using ResidualLab.Training;

namespace ResidualLab.Tests.Results;

/// <summary>A diverged run's NaN and infinities reach every writer: each records them, none throws.</summary>
public class NonFiniteResultsTests
{
    static readonly RunEnvironment Env = new("0.1.0", "abc123", ".NET 10", "0.107.0", "2.10.0", "cpu", 1, "host", "linux");

    [Fact]
    public void Run_files_exported_from_the_store_record_non_finite_numbers_as_named_literals()
    {
        string dir = TestSupport.TempDir();
        var config = TestSupport.TinyConfig();
        using (var store = ResultsStore.Open(dir))
        {
            store.BeginRun(config, Env);
            store.AddMetrics(config.RunId,
                [new StepMetrics(0, 2.3, 0.1, 0.5, 10, 100), new StepMetrics(1, double.NaN, 0.1, double.PositiveInfinity, 10, 100)],
                [new EvalMetrics(1, double.NegativeInfinity, double.NaN)], []);
            store.EndRun(config.RunId, new TrainResult(RunStatus.Diverged, 1, new EvalMetrics(1, double.PositiveInfinity, double.NaN), 10, 1, 10, 0,
                "non-finite loss at step 1"), 100, 1);
            RunFiles.Export(store, config.RunId, dir);
        }

        var lines = File.ReadAllLines(Path.Combine(dir, "metrics.jsonl"));
        Assert.Equal(3, lines.Length);
        Assert.Contains("\"loss\":\"NaN\"", lines[1]);
        Assert.Contains("\"grad_norm\":\"Infinity\"", lines[1]);
        var step = JsonSerializer.Deserialize<Dictionary<string, JsonElement>>(lines[1])!;
        Assert.True(double.IsNaN(step["loss"].Deserialize<double>(ResultJson.Line)));
        Assert.True(double.IsPositiveInfinity(step["grad_norm"].Deserialize<double>(ResultJson.Line)));

        using var result = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "result.json")));
        Assert.Equal("diverged", result.RootElement.GetProperty("status").GetString());
        Assert.Equal("non-finite loss at step 1", result.RootElement.GetProperty("note").GetString());
        Assert.Equal("Infinity", result.RootElement.GetProperty("train_loss").GetString());
        Assert.Equal("NaN", result.RootElement.GetProperty("val_loss").GetString());
        Assert.Contains("\"kind\":\"eval\"", lines[2]);
        Assert.Contains("\"train_loss\":\"-Infinity\"", lines[2]);
    }

    [Fact]
    public void The_store_keeps_infinities_and_reads_nan_back_as_nan()
    {
        string dir = TestSupport.TempDir();
        var config = TestSupport.TinyConfig();
        using var store = ResultsStore.Open(dir);
        store.BeginRun(config, Env);
        store.AddMetrics(config.RunId,
            [new StepMetrics(0, 2.3, 0.1, 0.5, 10, 100), new StepMetrics(1, double.NaN, 0.1, double.PositiveInfinity, 10, 100)],
            [new EvalMetrics(1, double.NegativeInfinity, double.NaN)],
            [new Diagnostic(1, "grad_norm", 0, double.NaN)]);
        store.EndRun(config.RunId, new TrainResult(RunStatus.Diverged, 1, null, 10, 1, 10, 0, "non-finite loss at step 1"), 100, 1);

        var steps = store.Steps(config.RunId);
        Assert.True(double.IsNaN(steps[1].Loss));
        Assert.True(double.IsPositiveInfinity(steps[1].GradNorm));
        Assert.True(double.IsNegativeInfinity(store.Evals(config.RunId).Single().TrainLoss));
        Assert.True(double.IsNaN(store.Diagnostics(config.RunId).Single().Value));
        var run = store.Find(config.RunId)!;
        Assert.Equal((RunState.Diverged, "non-finite loss at step 1"), (run.Status, run.Error));
    }

    [Fact]
    public void The_report_lists_a_diverged_run_with_its_step_and_reason()
    {
        string dir = TestSupport.TempDir();
        using (var store = ResultsStore.Open(dir))
            foreach (var (scheme, diverged) in new[] { ("pre-norm", false), ("post-norm", true) })
            {
                var config = TestSupport.TinyConfig($"connection.name={scheme}");
                store.BeginRun(config, Env);
                store.AddMetrics(config.RunId,
                    [new StepMetrics(0, 2.3, 0.1, 0.5, 10, 100), new StepMetrics(1, diverged ? double.NaN : 2.2, 0.1, diverged ? double.PositiveInfinity : 0.4, 10, 100)],
                    diverged ? [] : [new EvalMetrics(2, 2.2, 2.25)], []);
                store.EndRun(config.RunId, diverged
                    ? new TrainResult(RunStatus.Diverged, 1, null, 10, 1, 10, 0, "non-finite loss at step 1")
                    : new TrainResult(RunStatus.Done, 2, new EvalMetrics(2, 2.2, 2.25), 10, 1, 10, 0), 100, 1);
            }

        var output = ReportWriter.Write(dir, "pre-norm");

        Assert.Equal("non-finite loss at step 1", output.Diverged.Single().Error);
        Assert.Contains("1/1", output.Scorecard.Single(r => r.Group == "post-norm").Diverged + "/" + output.Scorecard.Single(r => r.Group == "post-norm").Finished);
        Assert.Contains("non-finite loss at step 1", File.ReadAllText(output.HtmlPath));
        Assert.Contains("non-finite loss at step 1", File.ReadAllText(Path.Combine(dir, "runs.csv")));
    }

    [Fact]
    public void A_diverging_vision_run_is_recorded_as_diverged_and_exported_with_its_numbers()
    {
        var set = ImageSets.FromFolder("toy", IdxTests.WriteSet(trainCount: 16, testCount: 4, size: 12));
        var v = new ConfigValues();
        foreach (var o in new[]
                 {
                     "model.name=plain", "model.depth=8", "model.width=4", "connection.name=none", "connection.norm=false",
                     "train.batch_size=8", "train.max_iters=20", "train.lr=0.1", "train.warmup_iters=0", "train.weight_decay=0",
                     "train.eval_interval=10", "train.eval_batches=1", "train.seed=1", "train.threads=1", "data.val_images=4",
                 })
            v.Override(o);
        var config = RunConfig.From(v);
        string dir = TestSupport.TempDir();
        using var store = ResultsStore.Open(dir);

        // A pixel standard deviation of 0 makes every normalised pixel NaN or infinite: the loss is NaN at step 0.
        var result = RunExecutor.Execute(config, Path.Combine(dir, "runs", config.RunId), store, data: DataCache.With(config.Vision.Images, set with { Std = 0 }));

        Assert.Equal(RunStatus.Diverged, result.Status);
        Assert.Equal("non-finite loss at step 0", result.Note);
        string runDir = Path.Combine(dir, "runs", config.RunId);
        using var exported = JsonDocument.Parse(File.ReadAllText(Path.Combine(runDir, "result.json")));
        Assert.Equal("diverged", exported.RootElement.GetProperty("status").GetString());
        var last = File.ReadAllLines(Path.Combine(runDir, "metrics.jsonl")).Last(l => l.Contains("\"kind\":\"step\""));
        Assert.Contains($"\"step\":{result.Steps}", last);        // the diverging step is recorded with its numbers
        Assert.Matches("NaN|Infinity", last);
        Assert.Equal(RunState.Diverged, store.Find(config.RunId)!.Status);
    }

    [Fact]
    public void A_divergence_is_described_in_one_line_with_its_reason_and_step()
    {
        var diverged = new TrainResult(RunStatus.Diverged, 34, new EvalMetrics(30, 1.5, 1.6), 4934, 12.3, 400, 600 << 20,
            "non-finite gradient norm at step 34");
        Assert.Equal("diverged: non-finite gradient norm at step 34; last evaluation at step 30: train loss 1.5000, val loss 1.6000, "
                     + "4,934 parameters, 12.3 s, 400.0 ms/step, peak RSS 600 MiB", TrainCommand.Describe(diverged));
        Assert.StartsWith("diverged: non-finite loss at step 0; last evaluation none, ",
            TrainCommand.Describe(diverged with { Steps = 0, FinalEval = null, Note = "non-finite loss at step 0" }));
        Assert.StartsWith("done: 34 steps, train loss 1.5000, val loss 1.6000, ", TrainCommand.Describe(diverged with { Status = RunStatus.Done }));
    }
}
