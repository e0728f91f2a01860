namespace ResidualLab.Training;

/// <summary>The process's resident memory, from /proc (Linux).</summary>
internal static class ProcessMemory
{
    /// <summary>Peak resident set size (VmHWM) in bytes; 0 where /proc is absent.</summary>
    public static long PeakRssBytes() => ReadStatus("VmHWM:");

    /// <summary>Current resident set size (VmRSS) in bytes.</summary>
    public static long RssBytes() => ReadStatus("VmRSS:");

    static long ReadStatus(string field)
    {
        const string path = "/proc/self/status";
        if (!File.Exists(path)) return 0;
        foreach (var line in File.ReadLines(path))
        {
            if (!line.StartsWith(field, StringComparison.Ordinal)) continue;
            var parts = line[field.Length..].Trim().Split(' ', StringSplitOptions.RemoveEmptyEntries);
            return long.Parse(parts[0]) * 1024;
        }
        return 0;
    }
}
