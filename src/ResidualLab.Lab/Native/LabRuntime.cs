namespace ResidualLab.Native;

/// <summary>
/// libtorch as the lab uses it: loaded through the library's <see cref="TorchRuntime"/> (with its Debian 12 fix),
/// then glibc's malloc set for training (<see cref="MallocSettings"/>). The library leaves a user's allocator alone;
/// the lab, which owns its processes, tunes it once.
/// </summary>
internal static class LabRuntime
{
    static readonly Lazy<bool> Ready = new(() =>
    {
        TorchRuntime.EnsureLoaded();
        MallocSettings.Apply();
        return true;
    });

    /// <summary>Loads libtorch and applies the lab's malloc settings; safe to call many times.</summary>
    public static void EnsureLoaded() => _ = Ready.Value;
}
