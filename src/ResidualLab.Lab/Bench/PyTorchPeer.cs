using System.Text.Json;
using ResidualLab.Native;
using ResidualLab.Processes;

namespace ResidualLab.Bench;

/// <summary>
/// Runs a workload's PyTorch twin (bench/pytorch/*.py) with Debian's python3-torch in a child process
/// and reads its one-line JSON result. libopenblas0 is required: without it Debian's PyTorch uses
/// reference BLAS and is about 20 times slower, which would make any comparison meaningless.
/// </summary>
internal static class PyTorchPeer
{
    public const string Python = "/usr/bin/python3";
    static readonly string[] Packages = ["python3-torch", "libopenblas0"];

    public static string ScriptFolder => Path.Combine(AppContext.BaseDirectory, "bench", "pytorch");

    /// <summary>A one-line error with the apt-get command when the peer's Debian packages are missing.</summary>
    /// <param name="installed">Whether a package is installed (dpkg-query unless a test injects another check).</param>
    public static void RequireInstalled(Func<string, bool>? installed = null) =>
        DebianPackages.Require("bench --compare-pytorch", Packages, installed);

    /// <summary>Runs a bench twin (bench/pytorch/*_bench.py) in a thread layout and reads its step time and memory.</summary>
    public static PeerBenchResult Bench(string script, IEnumerable<string> args, PeerLayout layout, TimeSpan timeout, string python = Python)
    {
        var json = Run(script, args, timeout, layout.Environment, python);
        var cudaPeak = json.TryGetProperty("peak_cuda_allocated_bytes", out var p) && p.ValueKind == JsonValueKind.Number ? p.GetInt64() : (long?)null;
        return new PeerBenchResult(json.GetProperty("torch").GetString() ?? "?", json.GetProperty("step_ms_median").GetDouble(),
            json.GetProperty("peak_rss_bytes").GetInt64(), json.GetProperty("rss_after_warmup_bytes").GetInt64(),
            json.GetProperty("final_rss_bytes").GetInt64(), json.GetProperty("parameters").GetInt64(), cudaPeak);
    }

    /// <summary>What the PyTorch of <paramref name="python"/> can run (bench/pytorch/torch_info.py), or why it cannot run at all.</summary>
    public static PeerTorch Probe(string python, TimeSpan timeout)
    {
        try
        {
            var json = Run("torch_info.py", [], timeout, python: python);
            return new PeerTorch(python, json.GetProperty("torch").GetString(), json.GetProperty("cuda").GetBoolean(),
                json.GetProperty("cuda_version").GetString(), json.GetProperty("gpu").GetString(), json.GetProperty("compile").GetBoolean());
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return PeerTorch.Unavailable(python, $"{python} cannot be started");
        }
        catch (Exception e) when (e is InvalidOperationException or TimeoutException or JsonException or KeyNotFoundException)
        {
            return PeerTorch.Unavailable(python, e.Message);
        }
    }

    /// <summary>Runs a script of bench/pytorch with <paramref name="python"/> and parses the last line it prints as JSON;
    /// <paramref name="environment"/> sets (or, with null, removes) variables of the child's environment.</summary>
    public static JsonElement Run(string script, IEnumerable<string> args, TimeSpan timeout,
        IReadOnlyDictionary<string, string?>? environment = null, string python = Python)
    {
        string path = Path.Combine(ScriptFolder, script);
        if (!File.Exists(path)) throw new ConfigException($"PyTorch script '{path}' is missing; rebuild reslab");
        var child = ChildProcess.Run(python, [path, .. args], timeout, environment);
        if (child.TimedOut) throw new TimeoutException($"{script} ran over {timeout.TotalSeconds:0} s");
        if (child.ExitCode != 0)
            throw new InvalidOperationException($"{script} failed ({child.ExitCode}): {child.LastErrorLine}");
        string line = child.StdOut.Trim().Split('\n').Last();
        return JsonDocument.Parse(line).RootElement.Clone();
    }
}

/// <summary>What a PyTorch bench twin measured: its torch version, median step time, memory (on CUDA also the peak
/// memory torch allocated) and parameter count.</summary>
internal sealed record PeerBenchResult(
    string TorchVersion, double MedianStepMs, long PeakRssBytes, long RssAfterWarmupBytes, long FinalRssBytes, long Parameters,
    long? PeakCudaAllocatedBytes)
{
    public long RssDriftBytes => FinalRssBytes - RssAfterWarmupBytes;
}

/// <summary>
/// A Python's PyTorch as the twins see it: its version, whether it reaches a GPU (and which), whether it has
/// torch.compile; or, with <paramref name="Problem"/> set, why it cannot run (no such Python, no torch).
/// </summary>
internal sealed record PeerTorch(string Python, string? Version, bool Cuda, string? CudaVersion, string? Gpu, bool Compile,
    string? Problem = null)
{
    public static PeerTorch Unavailable(string python, string problem) => new(python, null, false, null, null, false, problem);

    /// <summary>"PyTorch 2.11.0 (CUDA 13.0) at /usr/bin/python3", or the problem.</summary>
    public string Describe() => Problem ?? $"PyTorch {Version}{(CudaVersion is null ? "" : $" (CUDA {CudaVersion})")} at {Python}";
}
