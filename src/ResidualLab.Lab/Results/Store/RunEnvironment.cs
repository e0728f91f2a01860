using System.Runtime.InteropServices;
using ResidualLab.Native;
using TorchSharp;

namespace ResidualLab.Results.Store;

/// <summary>
/// What a run ran on: the ResidualLab version and commit that produced it, the runtime and library
/// versions, device, threads, host. Runs recorded before versions were stored read as "unknown".
/// </summary>
/// <param name="GitDirty">Whether the build's source tree had changes beyond <paramref name="GitCommit"/>;
/// null when unknown (a build outside git, or a run recorded before this was stored).</param>
/// <param name="Cpu">The host CPU as <see cref="CpuIdentity.Describe"/> names it; null for a run recorded before the store kept it.</param>
/// <param name="OneDnn">Whether libtorch's oneDNN kernels were on and why (<see cref="OneDnnChoice.Describe"/>: the setting,
/// and with auto the start-up probe's verdict); null for a run recorded before the store kept it.</param>
internal sealed record RunEnvironment(
    string Version, string GitCommit, string DotNet, string TorchSharp, string LibTorch, string Device, int Threads, string Host, string Os,
    bool? GitDirty = null, string? Cpu = null, string? OneDnn = null)
{
    public const string Unknown = "unknown";

    public static RunEnvironment Capture(string device, string? oneDnn = null) => new(
        Version: BuildInfo.Version,
        GitCommit: BuildInfo.Commit,
        DotNet: RuntimeInformation.FrameworkDescription,
        TorchSharp: typeof(torch).Assembly.GetName().Version?.ToString() ?? Unknown,
        LibTorch: torch.__version__,
        Device: device,
        Threads: torch.get_num_threads(),
        Host: Environment.MachineName,
        Os: RuntimeInformation.OSDescription,
        GitDirty: BuildInfo.Dirty,
        Cpu: CpuIdentity.Host.Describe(),
        OneDnn: oneDnn);

    /// <summary>The commit, marked "(dirty)" when the tree had uncommitted changes.</summary>
    public string CommitDescription => GitDirty == true ? $"{GitCommit} (dirty)" : GitCommit;
}
