using System.Diagnostics;
using ResidualLab.Processes;

namespace ResidualLab.Tests.Cli;

/// <summary>Runs the real reslab executable (built next to the tests) as a child process.</summary>
static class CliProcess
{
    public sealed record Outcome(int ExitCode, string StdOut, string StdErr);

    public static Outcome Run(IEnumerable<string> args, IDictionary<string, string>? env = null, int timeoutSeconds = 120)
    {
        string dll = Path.Combine(AppContext.BaseDirectory, "reslab.dll");
        var reslab = ChildProcess.Run("dotnet", [dll, .. args], TimeSpan.FromSeconds(timeoutSeconds),
            env?.Select(kv => KeyValuePair.Create(kv.Key, (string?)kv.Value)));
        if (reslab.TimedOut) throw new TimeoutException($"reslab {string.Join(' ', args)} ran over {timeoutSeconds} s");
        return new Outcome(reslab.ExitCode, reslab.StdOut, reslab.StdErr);
    }

    /// <summary>
    /// Starts reslab, waits until <paramref name="file"/> exists (a checkpoint), then SIGKILLs it a moment
    /// later, as a crash or an out-of-memory kill would; false when it exited on its own first.
    /// </summary>
    /// <param name="whileRunning">Done once the file exists, before the kill (the process must still run after it).</param>
    public static bool KillOnceWritten(IEnumerable<string> args, string file, int timeoutSeconds = 60, Action? whileRunning = null)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        psi.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "reslab.dll"));
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var child = Process.Start(psi)!;
        _ = child.StandardOutput.ReadToEndAsync();
        _ = child.StandardError.ReadToEndAsync();
        var clock = Stopwatch.StartNew();
        while (!File.Exists(file) && !child.HasExited && clock.Elapsed < TimeSpan.FromSeconds(timeoutSeconds)) Thread.Sleep(5);
        if (child.HasExited) return false;
        whileRunning?.Invoke();
        if (child.HasExited) return false;
        Thread.Sleep(30);
        child.Kill(); // SIGKILL
        child.WaitForExit();
        return true;
    }

    /// <summary>
    /// Runs reslab to its end; once <paramref name="ready"/> holds while it still runs, does
    /// <paramref name="meanwhile"/> (fills its disk, deletes its folder). Acted is false when it exited first.
    /// </summary>
    public static (Outcome Outcome, bool Acted) RunAndMeanwhile(IEnumerable<string> args, Func<bool> ready, Action meanwhile, int timeoutSeconds = 120)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        psi.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "reslab.dll"));
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var child = Process.Start(psi)!;
        var stdout = child.StandardOutput.ReadToEndAsync();
        var stderr = child.StandardError.ReadToEndAsync();
        var clock = Stopwatch.StartNew();
        while (!ready() && !child.HasExited && clock.Elapsed < TimeSpan.FromSeconds(timeoutSeconds)) Thread.Sleep(5);
        bool acted = !child.HasExited && ready();
        if (acted) meanwhile();
        if (!child.WaitForExit(TimeSpan.FromSeconds(timeoutSeconds)))
        {
            child.Kill(entireProcessTree: true);
            throw new TimeoutException($"reslab {string.Join(' ', args)} ran over {timeoutSeconds} s");
        }
        return (new Outcome(child.ExitCode, stdout.Result, stderr.Result), acted);
    }

    /// <summary>Asserts a failure with exactly one error line and no stack trace.</summary>
    public static string AssertOneLineError(Outcome o, int exitCode = 2)
    {
        Assert.Equal(exitCode, o.ExitCode);
        var lines = o.StdErr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Single(lines);
        Assert.StartsWith("reslab: error: ", lines[0]);
        Assert.DoesNotMatch(@"\bat [A-Z][\w.`]+\(", o.StdErr); // no stack frames
        return lines[0];
    }
}
