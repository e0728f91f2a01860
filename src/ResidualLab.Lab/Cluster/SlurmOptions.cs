using System.Globalization;
using System.Text.RegularExpressions;

namespace ResidualLab.Cluster;

/// <summary>
/// The resources each task of a sweep's job array asks for: partition, time limit, CPUs and GPUs.
/// Unset values are left to the cluster's defaults.
/// </summary>
internal sealed partial record SlurmOptions(string? Partition = null, string? Time = null, int? CpusPerTask = null, int? Gpus = null)
{
    /// <summary>Slurm's time formats: M, M:S, H:M:S, D-H, D-H:M, D-H:M:S, or UNLIMITED.</summary>
    [GeneratedRegex(@"^(\d+|\d+:\d+|\d+:\d+:\d+|\d+-\d+|\d+-\d+:\d+|\d+-\d+:\d+:\d+|UNLIMITED|INFINITE)$", RegexOptions.IgnoreCase)]
    private static partial Regex TimeFormat();

    public SlurmOptions Checked()
    {
        if (Time is not null && !TimeFormat().IsMatch(Time))
            throw new ConfigException($"--time '{Time}' is not a Slurm time limit; use minutes (90), H:M:S (1:30:00) or D-H:M:S (2-00:00:00)");
        if (CpusPerTask is < 1)
            throw new ConfigException($"--cpus-per-task must be at least 1, got {CpusPerTask}");
        if (Gpus is < 0)
            throw new ConfigException($"--gpus must be 0 or more, got {Gpus}");
        if (Partition is { Length: 0 })
            throw new ConfigException("--partition is empty; give a partition name (sinfo lists them)");
        return this;
    }

    /// <summary>The sbatch options for these resources.</summary>
    public IEnumerable<string> SbatchArgs()
    {
        if (Partition is not null) yield return $"--partition={Partition}";
        if (Time is not null) yield return $"--time={Time}";
        if (CpusPerTask is int c) yield return $"--cpus-per-task={c.ToString(CultureInfo.InvariantCulture)}";
        if (Gpus is int g and > 0) yield return $"--gres=gpu:{g.ToString(CultureInfo.InvariantCulture)}";
    }
}
