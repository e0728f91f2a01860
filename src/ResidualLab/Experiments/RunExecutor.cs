using ResidualLab.Checkpoints;
using ResidualLab.Data;
using ResidualLab.Data.Tokenizers;
using ResidualLab.Experiments.Store;
using ResidualLab.Native;
using ResidualLab.Training;
using TorchSharp;

namespace ResidualLab.Experiments;

/// <summary>Runs one config end to end: data, device, training, files, store, final checkpoint.</summary>
public static class RunExecutor
{
    public const string CheckpointFile = "checkpoint.bin";

    /// <summary>
    /// Model construction seeds libtorch's global generator; runs started side by side take turns here so
    /// each model's initialisation depends on its own seed only.
    /// </summary>
    static readonly object InitGate = new();

    /// <param name="resume">Continue from the run folder's checkpoint if there is one.</param>
    public static TrainResult Execute(RunConfig config, string runDir, ITrainingObserver? progress = null,
        TokenCorpus? corpus = null, CancellationToken cancel = default, ResultsStore? store = null, bool resume = false)
    {
        if (config.Vision is not null) return ExecuteVision(config, runDir, progress, cancel: cancel, store: store).Run;
        TorchRuntime.SetThreads(config.Threads);
        var device = TorchRuntime.ResolveDevice(config.Device);
        string checkpoint = Path.Combine(runDir, CheckpointFile);
        int? resumeStep = resume ? TrainingCheckpoint.PeekStep(checkpoint, config.RunId) : null;
        store?.BeginRun(config, RunEnvironment.Capture(device.ToString()), resumeStep ?? 0);
        try
        {
            corpus ??= CorpusLoader.Load(config.Data, config.Model.BlockSize);
            Trainer trainer;
            lock (InitGate) trainer = new Trainer(config, corpus, device);
            using var files = new RunFiles(runDir, config, resumeStep);
            DataProvenance.Write(runDir, corpus);
            var observers = new CompositeObserver(files, store is null ? null : new StoreObserver(store, config.RunId), progress);
            var result = trainer.Run(observers, cancel, new CheckpointPolicy(checkpoint, config.CheckpointInterval, resume));
            if (result.Status == RunStatus.Done)
            {
                trainer.SaveModel(Path.Combine(runDir, "model.pt"));
                File.Delete(checkpoint);
                File.WriteAllText(Path.Combine(runDir, TokenizerJson.RunFileName(corpus.Tokenizer)), TokenizerJson.Write(corpus.Tokenizer));
            }
            trainer.Optimizer.Dispose();
            trainer.Model.Dispose();
            return result;
        }
        catch (Exception ex)
        {
            store?.FailRun(config.RunId, ex.Message);
            throw;
        }
    }

    /// <summary>Runs a vision config (resnet, plain, mlp); also writes classifier.json (curves, gradient norms).</summary>
    public static ClassifierResult ExecuteVision(RunConfig config, string runDir, ITrainingObserver? progress = null,
        ImageSet? images = null, CancellationToken cancel = default, ResultsStore? store = null)
    {
        TorchRuntime.SetThreads(config.Threads);
        var device = TorchRuntime.ResolveDevice(config.Device);
        store?.BeginRun(config, RunEnvironment.Capture(device.ToString()));
        try
        {
            images ??= ImageSets.Load(config.Vision!.Images);
            ClassifierTrainer trainer;
            lock (InitGate) trainer = new ClassifierTrainer(config, images, device);
            using var files = new RunFiles(runDir, config);
            var observers = new CompositeObserver(files, store is null ? null : new StoreObserver(store, config.RunId), progress);
            var result = trainer.Run(observers, cancel);
            ClassifierFiles.Write(runDir, config, trainer.TrainImages, result);
            if (result.Run.Status == RunStatus.Done) trainer.Model.save(Path.Combine(runDir, "model.pt"));
            trainer.Model.Dispose();
            return result;
        }
        catch (Exception ex)
        {
            store?.FailRun(config.RunId, ex.Message);
            throw;
        }
    }
}

/// <summary>Forwards events to several observers in order.</summary>
public sealed class CompositeObserver(params ITrainingObserver?[] observers) : ITrainingObserver
{
    readonly ITrainingObserver[] _all = observers.OfType<ITrainingObserver>().ToArray();
    public void OnStart(int maxIters) { foreach (var o in _all) o.OnStart(maxIters); }
    public void OnStep(StepMetrics step) { foreach (var o in _all) o.OnStep(step); }
    public void OnEval(EvalMetrics eval) { foreach (var o in _all) o.OnEval(eval); }
    public void OnDiagnostic(Diagnostic diagnostic) { foreach (var o in _all) o.OnDiagnostic(diagnostic); }
    public void OnEnd(TrainResult result) { foreach (var o in _all) o.OnEnd(result); }
}
