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
    public static PeerBenchResult Bench(string script, IEnumerable<string> args, PeerLayout layout, TimeSpan timeout)
    {
        var json = Run(script, args, timeout, layout.Environment);
        return new PeerBenchResult(json.GetProperty("torch").GetString() ?? "?", json.GetProperty("step_ms_median").GetDouble(),
            json.GetProperty("peak_rss_bytes").GetInt64(), json.GetProperty("rss_after_warmup_bytes").GetInt64(),
            json.GetProperty("final_rss_bytes").GetInt64());
    }

    /// <summary>Runs a script of bench/pytorch and parses the last line it prints as JSON; <paramref name="environment"/>
    /// sets (or, with null, removes) variables of the child's environment.</summary>
    public static JsonElement Run(string script, IEnumerable<string> args, TimeSpan timeout,
        IReadOnlyDictionary<string, string?>? environment = null)
    {
        string path = Path.Combine(ScriptFolder, script);
        if (!File.Exists(path)) throw new ConfigException($"PyTorch script '{path}' is missing; rebuild reslab");
        var python = ChildProcess.Run(Python, [path, .. args], timeout, environment);
        if (python.TimedOut) throw new TimeoutException($"{script} ran over {timeout.TotalSeconds:0} s");
        if (python.ExitCode != 0)
            throw new InvalidOperationException($"{script} failed ({python.ExitCode}): {python.LastErrorLine}");
        string line = python.StdOut.Trim().Split('\n').Last();
        return JsonDocument.Parse(line).RootElement.Clone();
    }
}

/// <summary>What a PyTorch bench twin measured: its torch version, median step time and memory.</summary>
internal sealed record PeerBenchResult(string TorchVersion, double MedianStepMs, long PeakRssBytes, long RssAfterWarmupBytes, long FinalRssBytes)
{
    public long RssDriftBytes => FinalRssBytes - RssAfterWarmupBytes;
}
