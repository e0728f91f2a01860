using System.Reflection;

namespace ResidualLab.Processes;

/// <summary>
/// How to start this same reslab again as another process: the apphost itself, or `dotnet reslab.dll`
/// when the current process is the dotnet host. Child runs of a sweep and cluster tasks use it.
/// </summary>
internal sealed record ReslabCommand(string File, IReadOnlyList<string> Prefix)
{
    /// <summary>The reslab of the current process (its entry assembly must be reslab).</summary>
    public static ReslabCommand Current()
    {
        string host = Environment.ProcessPath ?? throw new InvalidOperationException("the path of the running executable is unknown");
        bool viaDotnet = Path.GetFileNameWithoutExtension(host) == "dotnet";
        string? entry = Assembly.GetEntryAssembly()?.Location;
        if (viaDotnet && string.IsNullOrEmpty(entry))
            throw new InvalidOperationException("the entry assembly of the running dotnet process is unknown");
        return viaDotnet ? new ReslabCommand(host, [entry!]) : new ReslabCommand(host, []);
    }

    /// <summary>reslab.dll run by dotnet (for callers whose entry assembly is not reslab, such as tests).</summary>
    public static ReslabCommand Dll(string dllPath) => new("dotnet", [Path.GetFullPath(dllPath)]);

    /// <summary>
    /// Runs reslab with <paramref name="args"/> to its end; <paramref name="onOutputLine"/> sees its stdout as it comes;
    /// <paramref name="stop"/> passes a stop on to it as SIGTERM.
    /// </summary>
    public ChildResult Run(IEnumerable<string> args, Action<string>? onOutputLine = null, CancellationToken stop = default) =>
        ChildProcess.Run(File, Prefix.Concat(args), onOutputLine: onOutputLine, stop: stop);

    /// <summary>The command as one POSIX shell line, every word single-quoted.</summary>
    public string ShellLine(IEnumerable<string> args) => string.Join(' ', new[] { File }.Concat(Prefix).Concat(args).Select(Quote));

    public static string Quote(string word) => "'" + word.Replace("'", "'\\''") + "'";
}
