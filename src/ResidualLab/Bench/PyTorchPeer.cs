using System.Diagnostics;
using System.Text.Json;
using ResidualLab.Native;

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
        var psi = new ProcessStartInfo(Python) { RedirectStandardOutput = true, RedirectStandardError = true };
        psi.ArgumentList.Add(path);
        foreach (var a in args) psi.ArgumentList.Add(a);
        foreach (var (name, value) in environment ?? new Dictionary<string, string?>())
        {
            if (value is null) psi.Environment.Remove(name);
            else psi.Environment[name] = value;
        }
        using var p = Process.Start(psi) ?? throw new InvalidOperationException($"cannot start {Python}");
        var stderr = p.StandardError.ReadToEndAsync();
        string stdout = p.StandardOutput.ReadToEnd();
        if (!p.WaitForExit(timeout))
        {
            p.Kill(entireProcessTree: true);
            throw new TimeoutException($"{script} ran over {timeout.TotalSeconds:0} s");
        }
        if (p.ExitCode != 0)
            throw new InvalidOperationException($"{script} failed ({p.ExitCode}): {stderr.Result.Trim().Split('\n').LastOrDefault()}");
        string line = stdout.Trim().Split('\n').Last();
        return JsonDocument.Parse(line).RootElement.Clone();
    }
}

/// <summary>What a PyTorch bench twin measured: its torch version, median step time and memory.</summary>
internal sealed record PeerBenchResult(string TorchVersion, double MedianStepMs, long PeakRssBytes, long RssAfterWarmupBytes, long FinalRssBytes)
{
    public long RssDriftBytes => FinalRssBytes - RssAfterWarmupBytes;
}
