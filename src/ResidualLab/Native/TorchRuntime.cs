using System.Runtime.InteropServices;
using TorchSharp;

namespace ResidualLab.Native;

/// <summary>Thrown when libtorch cannot be loaded; the message is the loader's real reason.</summary>
public sealed class NativeLoadException(string message) : Exception(message);

/// <summary>
/// Makes libtorch load on this host before the first torch call, and picks the device.
/// The app's own copy of libLibTorchSharp.so is patched (see <see cref="ElfWeakVersionPatch"/>)
/// when the host's libstdc++ lacks GLIBCXX_3.4.32; never the NuGet cache.
/// </summary>
public static class TorchRuntime
{
    internal const string NativeLibraryName = "libLibTorchSharp.so";
    internal const string MissingGlibcxxVersion = "GLIBCXX_3.4.32";

    static readonly object Gate = new();
    static bool _loaded;

    /// <summary>Folders where the app's copy of the native library may sit.</summary>
    static IEnumerable<string> CandidatePaths()
    {
        string baseDir = AppContext.BaseDirectory;
        yield return Path.Combine(baseDir, NativeLibraryName);
        yield return Path.Combine(baseDir, "runtimes", "linux-x64", "native", NativeLibraryName);
    }

    internal static string? FindNativeLibrary() => CandidatePaths().FirstOrDefault(File.Exists);

    /// <summary>True when the host's libstdc++ already provides the version the library asks for.</summary>
    internal static bool HostHasGlibcxx(string version)
    {
        foreach (var dir in new[] { "/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/usr/lib64", "/lib64", "/usr/lib" })
        {
            string lib = Path.Combine(dir, "libstdc++.so.6");
            if (!File.Exists(lib)) continue;
            byte[] bytes = File.ReadAllBytes(lib);
            return bytes.AsSpan().IndexOf(System.Text.Encoding.ASCII.GetBytes(version + "\0")) >= 0;
        }
        return false;
    }

    /// <summary>Applies the load fix where needed and loads libtorch. Safe to call many times.</summary>
    public static void EnsureLoaded()
    {
        lock (Gate)
        {
            if (_loaded) return;
            string? lib = FindNativeLibrary();
            if (lib is null)
                throw new NativeLoadException(
                    $"{NativeLibraryName} was not found next to the application ({AppContext.BaseDirectory}); rebuild with 'dotnet build' so the libtorch-cpu-linux-x64 natives are copied");

            if (OperatingSystem.IsLinux() && !HostHasGlibcxx(MissingGlibcxxVersion))
            {
                try { ElfWeakVersionPatch.MarkWeak(lib, MissingGlibcxxVersion); }
                catch (InvalidDataException ex) { throw new NativeLoadException(ex.Message); }
                catch (UnauthorizedAccessException ex)
                {
                    throw new NativeLoadException($"{lib}: cannot apply the Debian 12 load fix ({ex.Message}); make the build output writable");
                }
            }

            // Load it ourselves first: on failure the loader's own message is the real reason.
            if (!NativeLibrary.TryLoad(lib, out _))
            {
                string reason;
                try { NativeLibrary.Load(lib); reason = "unknown"; }
                catch (Exception ex) { reason = ex.Message; }
                throw new NativeLoadException($"libtorch could not be loaded: {reason}");
            }
            try { torch.InitializeDeviceType(DeviceType.CPU); }
            catch (Exception ex) { throw new NativeLoadException($"libtorch could not be initialised: {ex.Message}"); }
            _loaded = true;
        }
    }

    /// <summary>Resolves a device name ("cpu", "cuda", "cuda:1"); a clear error when CUDA is absent.</summary>
    public static torch.Device ResolveDevice(string name)
    {
        EnsureLoaded();
        string n = name.Trim().ToLowerInvariant();
        if (n == "cpu") return torch.CPU;
        if (n == "cuda" || n.StartsWith("cuda:", StringComparison.Ordinal))
        {
            if (!torch.cuda.is_available())
                throw new ArgumentException(
                    "device 'cuda' requested but no CUDA libtorch/GPU is available; use --device cpu, or run with a CUDA build of libtorch (docs/library.md, 'The libtorch runtime')");
            return torch.device(n);
        }
        throw new ArgumentException($"unknown device '{name}'; use cpu or cuda");
    }

    /// <summary>Sets the intra-op thread count; 0 keeps libtorch's default.</summary>
    public static void SetThreads(int threads)
    {
        EnsureLoaded();
        if (threads < 0) throw new ArgumentException($"threads must be >= 0, got {threads}");
        if (threads > 0) torch.set_num_threads(threads);
    }
}
