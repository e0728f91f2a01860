using ResidualLab.Data;
using static TorchSharp.torch;

namespace ResidualLab.Training;

/// <summary>
/// One model family's part of training: the model with its optimiser and schedule, what a batch is,
/// the loss, the probes and the evaluation. <see cref="Trainer"/> runs the loop, which is the same for
/// every family (steps, clipping, divergence, evaluation cadence, checkpoints, prefetch). A new family
/// is a model and a task (<see cref="Tasks.LanguageModelTask"/>, <see cref="Tasks.ImageClassificationTask"/>).
/// </summary>
internal interface ITrainingTask : IDisposable
{
    nn.Module Model { get; }
    IOptimizer Optimizer { get; }
    ILrSchedule Schedule { get; }

    /// <summary>The training batches; the loop draws ahead from a copy and moves this one after each batch it uses.</summary>
    IBatchSampler Batches { get; }

    /// <summary>What one batch holds, for the throughput: its count and its unit ("tokens", "images").</summary>
    (long Count, string Unit) BatchSize { get; }

    /// <summary>Called before the first step of a run that starts from scratch (not on resume).</summary>
    void OnStart();

    /// <summary>The mean loss of one training batch (forward pass, training mode).</summary>
    Tensor Loss(IBatch batch);

    /// <summary>Called after backward with the raw gradients in place, before clipping.</summary>
    void AfterBackward();

    /// <summary>Called after a step whose loss and gradient norm were finite (and whose update was made).</summary>
    void AfterStep(double loss);

    /// <summary>Prepares the probes to read the next forward pass (called on probe steps, before it).</summary>
    void ArmProbes();

    /// <summary>The probes' readings of this step's forward and backward passes (after <see cref="AfterBackward"/>).</summary>
    IEnumerable<Diagnostic> ReadProbes(int step);

    /// <summary>Evaluation: leaves the model in training mode.</summary>
    EvalMetrics Evaluate(int step);

    /// <summary>What the evaluation at <paramref name="step"/> measured beyond the losses (a classifier's error rates), as readings; none by default.</summary>
    IEnumerable<Diagnostic> EvalReadings(int step) => [];

    /// <summary>What a run that starts from scratch measures before its first step (a classifier's gradient norm per layer
    /// at initialisation), as readings at step 0; none by default.</summary>
    IEnumerable<Diagnostic> StartReadings() => [];

    /// <summary>What the task summed over every step of the run, read when it ends at <paramref name="step"/> (a classifier's
    /// mean gradient norm per layer); none by default.</summary>
    IEnumerable<Diagnostic> EndReadings(int step) => [];

    /// <summary>The names of the indices of the task's per-layer readings, by reading name (a classifier's weight layers);
    /// readings not named here are indexed by position.</summary>
    IReadOnlyDictionary<string, IReadOnlyList<string>> ReadingLabels() => new Dictionary<string, IReadOnlyList<string>>();

    /// <summary>The task's own running state (its curves and sums) for a checkpoint.</summary>
    void SaveState(BinaryWriter writer);

    void LoadState(BinaryReader reader);

    /// <summary>What the run's model as built states once (<see cref="RunFact"/>: its training FLOPs per step, a matched width).</summary>
    IReadOnlyList<RunFact> Facts();

    /// <summary>Writes what the run trains on into its folder (data.json), before training; returns the data's identity.</summary>
    DataIdentity DescribeData(string runDir);

    /// <summary>Writes the artefacts a run leaves in its folder (the model once done, a tokenizer); its results go to the store.</summary>
    void WriteRunFiles(string runDir, TrainResult result);
}
