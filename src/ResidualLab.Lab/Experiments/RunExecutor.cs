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
    /// <summary>
    /// Model construction seeds libtorch's global generator; runs started side by side take turns here so
    /// each model's initialisation depends on its own seed only.
    /// </summary>
    static readonly object InitGate = new();

    /// <summary>The task that trains <paramref name="config"/>'s model, as its family builds it.</summary>
    public static ITrainingTask CreateTask(RunConfig config, DataCache data, torch.Device device) => config.Family.CreateTask(config, data, device);

    /// <summary>
    /// Sets libtorch up for the run (intra-op threads, then oneDNN, which train.onednn = auto chooses at that
    /// thread count) and returns its device and the oneDNN choice.
    /// </summary>
    public static (torch.Device Device, OneDnnChoice OneDnn) PrepareRuntime(RunConfig config)
    {
        TorchRuntime.SetThreads(config.Threads);
        var oneDnn = OneDnnChoice.For(config.OneDnn, torch.get_num_threads());
        OneDnn.Enabled = oneDnn.Enabled;
        return (TorchRuntime.ResolveDevice(config.Device), oneDnn);
    }

    /// <param name="data">Data already loaded in this process (a sweep's runs share it); loaded on demand otherwise.</param>
    /// <param name="resume">Continue from the newest checkpoint of the run folder that verifies, if there is one.</param>
    /// <param name="finished">Called with the task once training has ended, before it is disposed (a family's own results).</param>
    /// <param name="note">Told, one line each, which checkpoint a resumed run continues from and which newer ones it skipped, and why.</param>
    /// <param name="store">The one sink of the run's results (steps, evaluations, readings, facts, outcome); the run
    /// folder's result files are exports of it (<see cref="RunFiles.Export"/>).</param>
    /// <remarks>
    /// The outcome is recorded in order: the model (and the family's artefacts), then the store's row, then the run
    /// folder's exports from the store, so a run the store calls done has its model. A storage fault
    /// (<see cref="StorageException"/>) stops the run; it leaves the store and the run's checkpoints as they were, and
    /// its message says which checkpoint the run can continue from.
    /// </remarks>
    public static TrainResult Execute(RunConfig config, string runDir, ResultsStore store, ITrainingObserver? progress = null,
        DataCache? data = null, CancellationToken cancel = default, bool resume = false,
        Action<ITrainingTask, TrainResult>? finished = null, Action<string>? note = null)
    {
        var (device, oneDnn) = PrepareRuntime(config);
        var from = resume ? TrainingCheckpoint.Latest(runDir, config.RunId, note) : null;
        if (from is not null) note?.Invoke($"resuming at step {from.Step}/{config.Train.MaxIters} from {Path.GetFileName(from.Path)}");
        bool begun = false;
        try
        {
            store.BeginRun(config, RunEnvironment.Capture(device.ToString(), oneDnn.Describe()), from?.Step ?? 0);
            begun = true;
            data ??= new DataCache();
            ITrainingTask task;
            lock (InitGate) task = CreateTask(config, data, device);
            using (task)
            {
                RunFiles.WriteDefinition(runDir, config);
                var trainedOn = task.DescribeData(runDir);
                store.RecordData(config.RunId, trainedOn);
                store.RecordFacts(config.RunId, task.Facts());
                store.RecordLabels(config.RunId, task.ReadingLabels());
                var observers = new CompositeObserver(new TaskFiles(task, runDir), new StoreObserver(store, config.RunId), progress);
                var result = new Trainer(task, config).Run(observers, cancel,
                    new CheckpointPolicy(runDir, config.CheckpointInterval, config.KeepCheckpoints, from));
                RunFiles.Export(store, config.RunId, runDir);
                if (result.Status == RunStatus.Done) TrainingCheckpoint.DeleteAll(runDir);
                finished?.Invoke(task, result);
                return result;
            }
        }
        catch (StorageException ex)
        {
            if (begun) RecordFailure(store, config.RunId, ex.Message);
            var newest = TrainingCheckpoint.List(runDir).FirstOrDefault();
            throw ex.With(kept: newest is null
                ? $"run {config.RunId} has no checkpoint and starts over"
                : $"run {config.RunId} keeps its checkpoint at step {newest.Step}");
        }
        catch (Exception ex)
        {
            if (begun) RecordFailure(store, config.RunId, ex.Message);
            throw;
        }
    }

    /// <summary>
    /// Marks the run failed when the store can still be written. When it cannot (the fault that stopped the
    /// run is the store's own), the row stays 'running' and the next sweep marks it interrupted.
    /// </summary>
    static void RecordFailure(ResultsStore store, string runId, string error)
    {
        try { store.FailRun(runId, error); }
        catch (StorageException) { }
    }

    /// <summary>Writes the task's artefacts (the model once done) as training ends, before the store records the outcome.</summary>
    sealed class TaskFiles(ITrainingTask task, string runDir) : ITrainingObserver
    {
        public void OnEnd(TrainResult result) => task.WriteRunFiles(runDir, result);
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
    public void OnCheckpoint(int step) { foreach (var o in _all) o.OnCheckpoint(step); }
    public void OnEnd(TrainResult result) { foreach (var o in _all) o.OnEnd(result); }
}
