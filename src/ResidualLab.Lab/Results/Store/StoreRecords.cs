namespace ResidualLab.Results.Store;

/// <summary>Where a run stands in the store.</summary>
internal static class RunState
{
    public const string Running = "running";
    public const string Done = "done";
    public const string Diverged = "diverged";
    public const string Failed = "failed";
    /// <summary>Stopped on request (Ctrl-C) or found 'running' with its process gone (killed).</summary>
    public const string Interrupted = "interrupted";

    /// <summary>Finished with an outcome that a repeat would reproduce (training is deterministic): never redone.</summary>
    public static bool IsFinal(string status) => status is Done or Diverged;
}

/// <summary>One run as the store keeps it.</summary>
internal sealed record RunRecord(
    string RunId,
    string Label,
    string Model,
    string Connection,
    int Depth,
    long Seed,
    string Config,
    string Status,
    string? Error,
    DateTimeOffset StartedAt,
    DateTimeOffset? EndedAt,
    string Host,
    int Pid,
    int Steps,
    long Parameters,
    double MeanStepMs,
    double ItemsPerSecond,
    long PeakRssBytes,
    double? TrainLoss,
    double? ValLoss)
{
    /// <summary>Final loss on the test split: what reports show (null: recorded before the test split, or none).</summary>
    public double? TestLoss { get; init; }

    /// <summary>What <see cref="ItemsPerSecond"/> counts: "tokens" (the GPT) or "images" (the vision models); null before a step ran.</summary>
    public string? ItemUnit { get; init; }

    /// <summary>The name of the data the run trained on (a corpus, a file, an image set) and the sha256 of its bytes; null before it was recorded.</summary>
    public string? DataName { get; init; }

    /// <inheritdoc cref="DataName"/>
    public string? DataSha256 { get; init; }
}

/// <summary>One training step; ItemsPerSecond counts the run's <see cref="RunRecord.ItemUnit"/>.</summary>
internal sealed record StepRow(int Step, double Loss, double Lr, double GradNorm, double StepMs, double ItemsPerSecond);

/// <summary>One evaluation; TestLoss is NaN when the run has no test split.</summary>
internal sealed record EvalRow(int Step, double TrainLoss, double ValLoss, double TestLoss = double.NaN);

internal sealed record DiagnosticRow(int Step, string Name, int Index, double Value);

/// <summary>Task <see cref="Task"/> of cluster job array <see cref="JobId"/>, submitted to train one run.</summary>
internal sealed record ClusterTask(string JobId, int Task, string RunId, DateTimeOffset SubmittedAt)
{
    /// <summary>Slurm's name of the task: JOBID_TASK.</summary>
    public string Name => $"{JobId}_{Task}";
}
