using System.Globalization;

namespace ResidualLab.Results;

/// <summary>
/// A results folder's lock file, sweep.lock: held by a local sweep for its whole life and by a Slurm
/// submission while it plans and submits, so two of them never plan and train the same runs at once.
/// It names its holder (pid, host, start time, what it is). A lock left by a process of this host that
/// is gone (killed, crashed) is taken over with a note; one of another host cannot be checked, and is
/// left to the user to remove.
/// </summary>
internal sealed class FolderLock : IDisposable
{
    public const string FileName = "sweep.lock";

    readonly string _path;
    readonly string _content;

    FolderLock(string path, string content) => (_path, _content) = (path, content);

    /// <summary>The holder a lock file names.</summary>
    public sealed record Holder(int Pid, string Host, DateTimeOffset Since, string What)
    {
        public override string ToString() => $"{What} (pid {Pid} on {Host}, since {Since:yyyy-MM-dd HH:mm:ss} UTC)";
    }

    /// <summary>Takes the lock of <paramref name="folder"/> for <paramref name="what"/>, or throws a one-line error naming its holder.</summary>
    /// <param name="note">Told when a stale lock is taken over.</param>
    public static FolderLock Acquire(string folder, string what, Action<string> note)
    {
        StorageException.CreateFolder(folder);
        string path = Path.Combine(folder, FileName);
        var me = new Holder(Environment.ProcessId, Environment.MachineName, DateTimeOffset.UtcNow, what);
        string content = Write(me);
        for (int attempt = 0; ; attempt++)
        {
            string tmp = $"{path}.{Environment.ProcessId}.tmp";
            AtomicFile.WriteText(tmp, content); // complete before it can become the lock
            try
            {
                File.Move(tmp, path, overwrite: false); // atomic: fails when a lock exists
                return new FolderLock(path, content);
            }
            catch (IOException) when (attempt < 3)
            {
                File.Delete(tmp);
            }
            string held = ReadText(path);
            if (held.Length == 0) continue; // released meanwhile
            var holder = Parse(held);
            if (holder is null)
                throw new ConfigException($"'{folder}' has an unreadable lock file {path}; if no sweep or Slurm submission uses the folder, delete it and run again");
            bool gone = holder.Host == Environment.MachineName && holder.Pid != Environment.ProcessId && !IsAlive(holder.Pid);
            if (!gone)
                throw new ConfigException(
                    $"'{folder}' is in use by {holder}; wait until it ends (reslab status {folder}), stop it, or give another results folder (--out)"
                    + (holder.Host == Environment.MachineName ? "" : $"; if that process is gone, delete {path}"));
            if (ReadText(path) == held) File.Delete(path);
            note($"took over the lock of '{folder}' from {holder}, which is gone");
        }
    }

    /// <summary>Whether a process with this id runs on this host.</summary>
    public static bool IsAlive(int pid)
    {
        try { using var p = System.Diagnostics.Process.GetProcessById(pid); return !p.HasExited; }
        catch (ArgumentException) { return false; }
    }

    static string Write(Holder h) =>
        $"pid {h.Pid}\nhost {h.Host}\nsince {h.Since.ToString("O", CultureInfo.InvariantCulture)}\nwhat {h.What}\n";

    static Holder? Parse(string text)
    {
        var fields = text.Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(line => line.Split(' ', 2)).Where(p => p.Length == 2).ToDictionary(p => p[0], p => p[1]);
        return fields.TryGetValue("pid", out var pid) && int.TryParse(pid, CultureInfo.InvariantCulture, out int id)
               && fields.TryGetValue("host", out var host) && fields.TryGetValue("since", out var since)
               && DateTimeOffset.TryParse(since, CultureInfo.InvariantCulture, DateTimeStyles.RoundtripKind, out var at)
            ? new Holder(id, host, at, fields.GetValueOrDefault("what", "a reslab process"))
            : null;
    }

    static string ReadText(string path)
    {
        try { return File.ReadAllText(path); }
        catch (FileNotFoundException) { return ""; }
    }

    /// <summary>Releases the lock, unless another process took it over meanwhile.</summary>
    public void Dispose()
    {
        if (ReadText(_path) == _content) File.Delete(_path);
    }
}
