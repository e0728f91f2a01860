using System.Diagnostics;
using ResidualLab.Config;
using ResidualLab.Data;
using ResidualLab.Families;
using ResidualLab.Models;
using ResidualLab.Results.Store;
using ResidualLab.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace ResidualLab.Experiments;

/// <summary>
/// What a trained vision model is at inference, measured on its run's model.pt and recorded in the results store
/// as readings at the run's last step: a RepVGG's test error once fused (<see cref="RepVgg.Fuse"/>) and the largest
/// logit difference between its fused and branched forms, and the inference time per image of nets compared
/// against each other, timed in one process, interleaved round by round so that a change in the machine's load
/// reaches all of them alike.
/// </summary>
internal static class Deployment
{
    /// <summary>Test error (fraction) of the fused RepVGG.</summary>
    public const string FusedTestError = "test_error_fused";

    /// <summary>Largest |logit| difference, fused against branched (evaluation mode), over the test split.</summary>
    public const string FusedLogitDifference = "fused_max_abs_logit_diff";

    /// <summary>Median microseconds per image of a forward pass of the model as trained, evaluation mode.</summary>
    public const string InferenceMicroseconds = "infer_us_per_image";

    /// <summary>The same for the fused RepVGG.</summary>
    public const string FusedInferenceMicroseconds = "infer_us_per_image_fused";

    /// <summary>A finished vision run's model from its folder's model.pt, in evaluation mode.</summary>
    public static ImageClassifier Load(RunConfig config, ImageSet images, string runDir, Device device)
    {
        string path = Path.Combine(runDir, "model.pt");
        if (!File.Exists(path))
            throw new ConfigException($"run folder '{runDir}' has no model.pt: the run did not finish; train it to the end first");
        var model = config.Settings<VisionSettings>().Model with { InChannels = images.Channels, ImageSize = images.Height, Classes = images.Classes };
        var classifier = model.Build(config.Connection);
        try { classifier.load(path, strict: true); }
        catch (Exception ex) when (ex is ArgumentException or InvalidOperationException or IOException or EndOfStreamException)
        {
            classifier.Dispose();
            throw new ConfigException($"'{path}' does not match its run's config ({ex.Message.ReplaceLineEndings(" ")})");
        }
        classifier.to(device);
        classifier.eval();
        return classifier;
    }

    /// <summary>Evaluates a RepVGG run fused (test error, and the largest logit difference from the branched net) and records both.</summary>
    public static void RecordFused(RunConfig config, string runDir, ImageSet images, ResultsStore store)
    {
        var (device, _) = RunExecutor.PrepareRuntime(config);
        using var branched = (RepVgg)Load(config, images, runDir, device);
        using var fused = branched.Fuse();
        double wrong = 0, difference = 0;
        foreach (var (x, y) in ImageBatcher.InOrder(images, images.Test, config.Train.BatchSize, int.MaxValue, device))
        {
            using var scope = NewDisposeScope();
            using var _ = no_grad();
            var logits = fused.call(x);
            wrong += logits.argmax(1).ne(y).sum().item<long>();
            difference = Math.Max(difference, (logits - branched.call(x)).abs().max().item<float>());
        }
        int step = config.Train.MaxIters;
        store.AddMetrics(config.RunId, [], [],
            [new Diagnostic(step, FusedTestError, 0, wrong / images.Test.Count), new Diagnostic(step, FusedLogitDifference, 0, difference)]);
    }

    /// <summary>
    /// Times a forward pass of the first batch of test images through <paramref name="baseline"/>'s model and
    /// <paramref name="repvgg"/>'s, branched and fused, interleaved for <paramref name="rounds"/> rounds (each model's
    /// place in the round turning), after one untimed round; records each one's median time per image. The runtime
    /// (threads, oneDNN) is the baseline run's.
    /// </summary>
    public static void RecordInferenceTimes(RunConfig baseline, string baselineDir, RunConfig repvgg, string repvggDir,
        ImageSet images, ResultsStore store, int rounds = 30)
    {
        var (device, _) = RunExecutor.PrepareRuntime(baseline);
        using var resnet = Load(baseline, images, baselineDir, device);
        using var branched = (RepVgg)Load(repvgg, images, repvggDir, device);
        using var fused = branched.Fuse();
        var (x, labels) = ImageBatcher.InOrder(images, images.Test, baseline.Train.BatchSize, baseline.Train.BatchSize, device).First();
        labels.Dispose();
        nn.Module<Tensor, Tensor>[] models = [resnet, branched, fused];
        var times = models.Select(_ => new List<double>()).ToArray();
        for (int round = -1; round < rounds; round++)
            for (int k = 0; k < models.Length; k++)
            {
                int m = (k + Math.Max(round, 0)) % models.Length;
                using var scope = NewDisposeScope();
                using var _ = no_grad();
                var clock = Stopwatch.StartNew();
                models[m].call(x);
                if (device.type == DeviceType.CUDA) cuda.synchronize();
                if (round >= 0) times[m].Add(clock.Elapsed.TotalSeconds);
            }
        double PerImage(int m) => Reports.Statistics.Median(times[m]) / x.shape[0] * 1e6;
        store.AddMetrics(baseline.RunId, [], [], [new Diagnostic(baseline.Train.MaxIters, InferenceMicroseconds, 0, PerImage(0))]);
        store.AddMetrics(repvgg.RunId, [], [],
            [new Diagnostic(repvgg.Train.MaxIters, InferenceMicroseconds, 0, PerImage(1)), new Diagnostic(repvgg.Train.MaxIters, FusedInferenceMicroseconds, 0, PerImage(2))]);
        x.Dispose();
    }
}
