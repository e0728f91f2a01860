namespace ResidualLab.Training;

/// <summary>One training step: its loss, learning rate, gradient norm (before clipping), time, and
/// throughput in the task's unit (<paramref name="Unit"/>: "tokens" for a language model, "images" for a classifier).</summary>
internal sealed record StepMetrics(int Step, double Loss, double Lr, double GradNorm, double StepMs, double ItemsPerSecond, string Unit = "tokens");

/// <summary>
/// Mean losses over the fixed evaluation batches of each split. Validation is for selection (learning
/// rate, step); test is what reports show. NaN test loss: the run has no test split.
/// </summary>
internal sealed record EvalMetrics(int Step, double TrainLoss, double ValLoss, double TestLoss = double.NaN);

internal enum RunStatus { Done, Diverged, Cancelled }

internal sealed record TrainResult(
    RunStatus Status,
    int Steps,
    EvalMetrics? FinalEval,
    long Parameters,
    double WallSeconds,
    double MeanStepMs,
    long PeakRssBytes,
    string? Note = null);

/// <summary>One probe reading: a named quantity at a step, for one layer or index (e.g. grad_norm of block 3).</summary>
internal sealed record Diagnostic(int Step, string Name, int Index, double Value);

/// <summary>Receives a run's events as they happen (progress display, result files, store).</summary>
internal interface ITrainingObserver
{
    void OnStart(int maxIters) { }
    void OnStep(StepMetrics step) { }
    void OnEval(EvalMetrics eval) { }
    void OnDiagnostic(Diagnostic diagnostic) { }

    /// <summary>
    /// Called before the checkpoint that resumes at <paramref name="step"/> is written: an observer that
    /// buffers persists what it has, so a run resumed from that checkpoint finds every earlier step.
    /// </summary>
    void OnCheckpoint(int step) { }

    void OnEnd(TrainResult result) { }
}
