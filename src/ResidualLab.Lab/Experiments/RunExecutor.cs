using ResidualLab.Config;
using ResidualLab.Data;
using ResidualLab.Native;
using ResidualLab.Results;
using ResidualLab.Results.Store;
using ResidualLab.Training;
using ResidualLab.Training.Tasks;
using TorchSharp;

namespace ResidualLab.Experiments;

/// <summary>Runs one config end to end, for every model family: data, device, task, training, files, store.</summary>
internal static class RunExecutor
{
    public const string CheckpointFile = "checkpoint.bin";

    /// <summary>
    /// Model construction seeds libtorch's global generator; runs started side by side take turns here so
    /// each model's initialisation depends on its own seed only.
    /// </summary>
    static readonly object InitGate = new();

    /// <summary>The task that trains <paramref name="config"/>'s model, as its family builds it.</summary>
    public static ITrainingTask CreateTask(RunConfig config, DataCache data, torch.Device device) => config.Family.CreateTask(config, data, device);

    /// <summary>Sets libtorch up for the run (intra-op threads, oneDNN) and returns its device.</summary>
    public static torch.Device PrepareRuntime(RunConfig config)
    {
        TorchRuntime.SetThreads(config.Threads);
        OneDnn.Enabled = config.OneDnn;
        return TorchRuntime.ResolveDevice(config.Device);
    }

    /// <param name="data">Data already loaded in this process (a sweep's runs share it); loaded on demand otherwise.</param>
    /// <param name="resume">Continue from the run folder's checkpoint if there is one.</param>
    /// <param name="finished">Called with the task once training has ended, before it is disposed (a family's own results).</param>
    public static TrainResult Execute(RunConfig config, string runDir, ITrainingObserver? progress = null,
        DataCache? data = null, CancellationToken cancel = default, ResultsStore? store = null, bool resume = false,
        Action<ITrainingTask, TrainResult>? finished = null)
    {
        var device = PrepareRuntime(config);
        string checkpoint = Path.Combine(runDir, CheckpointFile);
        int? resumeStep = resume ? TrainingCheckpoint.PeekStep(checkpoint, config.RunId) : null;
        store?.BeginRun(config, RunEnvironment.Capture(device.ToString()), resumeStep ?? 0);
        try
        {
            data ??= new DataCache();
            ITrainingTask task;
            lock (InitGate) task = CreateTask(config, data, device);
            using (task)
            {
                Directory.CreateDirectory(runDir);
                var trainedOn = task.DescribeData(runDir);
                store?.RecordData(config.RunId, trainedOn);
                store?.RecordFacts(config.RunId, task.Facts());
                using var files = new RunFiles(runDir, config, resumeStep, trainedOn);
                var observers = new CompositeObserver(files, store is null ? null : new StoreObserver(store, config.RunId), progress);
                var result = new Trainer(task, config).Run(observers, cancel, new CheckpointPolicy(checkpoint, config.CheckpointInterval, resume));
                task.WriteRunFiles(runDir, result);
                if (result.Status == RunStatus.Done) File.Delete(checkpoint);
                finished?.Invoke(task, result);
                return result;
            }
        }
        catch (Exception ex)
        {
            store?.FailRun(config.RunId, ex.Message);
            throw;
        }
    }
}

/// <summary>Forwards events to several observers in order.</summary>
internal sealed class CompositeObserver(params ITrainingObserver?[] observers) : ITrainingObserver
{
    readonly ITrainingObserver[] _all = observers.OfType<ITrainingObserver>().ToArray();
    public void OnStart(int maxIters) { foreach (var o in _all) o.OnStart(maxIters); }
    public void OnStep(StepMetrics step) { foreach (var o in _all) o.OnStep(step); }
    public void OnEval(EvalMetrics eval) { foreach (var o in _all) o.OnEval(eval); }
    public void OnDiagnostic(Diagnostic diagnostic) { foreach (var o in _all) o.OnDiagnostic(diagnostic); }
    public void OnEnd(TrainResult result) { foreach (var o in _all) o.OnEnd(result); }
}
