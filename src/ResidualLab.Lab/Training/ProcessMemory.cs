using System.Runtime.InteropServices;

namespace ResidualLab.Training;

/// <summary>The process's resident memory, from /proc (Linux).</summary>
internal static class ProcessMemory
{
    /// <summary>Peak resident set size (VmHWM) in bytes; 0 where /proc is absent.</summary>
    public static long PeakRssBytes() => ReadStatus("VmHWM:");

    /// <summary>Current resident set size (VmRSS) in bytes.</summary>
    public static long RssBytes() => ReadStatus("VmRSS:");

    /// <summary>Returns freed memory to the system (a full garbage collection, then glibc's malloc_trim), so that
    /// the resident size counts what is alive.</summary>
    public static void Trim()
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        MallocTrim(0);
    }

    /// <summary>Resets VmHWM to the current RSS (Linux: "5" to /proc/self/clear_refs).</summary>
    public static void ResetPeakRss()
    {
        try { File.WriteAllText("/proc/self/clear_refs", "5"); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new IOException($"cannot reset the peak resident memory (/proc/self/clear_refs): {e.Message}", e);
        }
    }

    [DllImport("libc", EntryPoint = "malloc_trim")]
    static extern int MallocTrim(nuint pad);

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
