using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text;

namespace ResidualLab.Processes;

/// <summary>What a child process left: its exit code, all it wrote, and whether it was killed for running too long.</summary>
internal sealed record ChildResult(int ExitCode, string StdOut, string StdErr, bool TimedOut)
{
    /// <summary>The last line of stderr, where a failing program usually says why.</summary>
    public string LastErrorLine => StdErr.Trim().Split('\n').LastOrDefault()?.Trim() ?? "";
}

/// <summary>
/// Runs a program to its end. Arguments go as a list, never through a shell, so nothing needs quoting.
/// stdout and stderr are read at the same time: a child that fills one pipe while its parent waits on the
/// other would stall for ever. A timeout kills the whole process tree, so that no grandchild (a Python's
/// workers, a build's nodes) outlives it.
/// </summary>
internal static class ChildProcess
{
    /// <param name="environment">Variables to set; a null value removes the variable from the child's environment.</param>
    /// <param name="onOutputLine">Sees each stdout line as it comes (the line is also kept in the result).</param>
    /// <param name="stop">When cancelled, the child is sent SIGTERM (a reslab child stops between steps and records
    /// itself as interrupted) and still waited for, so that no child outlives its parent.</param>
    /// <exception cref="System.ComponentModel.Win32Exception">The program is not installed or not executable.</exception>
    public static ChildResult Run(string program, IEnumerable<string> args, TimeSpan? timeout = null,
        IEnumerable<KeyValuePair<string, string?>>? environment = null, string? workingDirectory = null, Action<string>? onOutputLine = null,
        CancellationToken stop = default)
    {
        var start = new ProcessStartInfo(program) { RedirectStandardOutput = true, RedirectStandardError = true };
        if (workingDirectory is not null) start.WorkingDirectory = workingDirectory;
        foreach (var a in args) start.ArgumentList.Add(a);
        foreach (var (key, value) in environment ?? [])
        {
            if (value is null) start.Environment.Remove(key);
            else start.Environment[key] = value;
        }
        using var process = Process.Start(start) ?? throw new InvalidOperationException($"cannot start {program}");
        var stdout = Read(process.StandardOutput, onOutputLine);
        var stderr = process.StandardError.ReadToEndAsync();
        using var forward = stop.Register(() => Terminate(process.Id));
        bool exited = process.WaitForExit(timeout ?? Timeout.InfiniteTimeSpan);
        if (!exited)
        {
            process.Kill(entireProcessTree: true);
            process.WaitForExit();
        }
        return new ChildResult(process.ExitCode, stdout.Result, stderr.Result, TimedOut: !exited);
    }

    const int SigTerm = 15;

    [DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    static extern int Kill(int pid, int signal);

    /// <summary>SIGTERM to <paramref name="pid"/>; a child that has already exited is left alone.</summary>
    static void Terminate(int pid) => Kill(pid, SigTerm);

    static async Task<string> Read(StreamReader reader, Action<string>? onLine)
    {
        if (onLine is null) return await reader.ReadToEndAsync();
        var text = new StringBuilder();
        while (await reader.ReadLineAsync() is { } line)
        {
            text.Append(line).Append('\n');
            onLine(line);
        }
        return text.ToString();
    }
}
