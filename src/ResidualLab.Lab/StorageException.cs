using Microsoft.Data.Sqlite;

namespace ResidualLab;

/// <summary>Why a file or folder of reslab's could not be read or written, for a reason outside reslab.</summary>
internal enum StorageFault
{
    /// <summary>No space left on the device (ENOSPC), a disk quota reached (EDQUOT), SQLite's SQLITE_FULL.</summary>
    Full,

    /// <summary>The filesystem is mounted read-only (EROFS), SQLite's SQLITE_READONLY.</summary>
    ReadOnly,

    /// <summary>This user may not write there (EACCES, EPERM).</summary>
    Denied,

    /// <summary>The file or its folder was deleted or moved while reslab used it (ENOENT).</summary>
    Gone,

    /// <summary>Another process kept the results store locked past its busy timeout (SQLITE_BUSY).</summary>
    Busy,

    /// <summary>Any other error the device or the system reported (EIO, SQLite's SQLITE_IOERR and SQLITE_CANTOPEN).</summary>
    Failed,
}

/// <summary>
/// A file or folder of reslab's (the results store, a run folder, a checkpoint, a report, an export)
/// could not be read or written for a reason outside reslab. Its message is one line: what failed on
/// which path, why, what to do, and what was kept. The code that knows more (the run, the sweep, the
/// command) adds it with <see cref="With"/> on the way up.
/// </summary>
internal sealed class StorageException : Exception
{
    public StorageFault Fault { get; }

    /// <summary>What was being done, as the start of a sentence that the path ends: "writing", "recording run X in".</summary>
    public string Action { get; }

    /// <summary>The file or folder it was done to.</summary>
    public string Path { get; }

    /// <summary>A way around the fault besides its fix ("pass --out elsewhere").</summary>
    public string? Alternative { get; }

    /// <summary>What to run once the fault is fixed.</summary>
    public string? Then { get; }

    /// <summary>What was kept, as one or more clauses.</summary>
    public string? Kept { get; }

    public StorageException(StorageFault fault, string action, string path, Exception inner)
        : this(fault, action, path, inner, null, null, null) { }

    StorageException(StorageFault fault, string action, string path, Exception? inner, string? alternative, string? then, string? kept)
        : base(null, inner) => (Fault, Action, Path, Alternative, Then, Kept) = (fault, action, path, alternative, then, kept);

    /// <summary>The same fault with more context: a way around it, what to run next (each replaces the one given before), and what was kept (put before what was said).</summary>
    public StorageException With(string? alternative = null, string? then = null, string? kept = null) =>
        new(Fault, Action, Path, InnerException, alternative ?? Alternative, then ?? Then,
            kept is null ? Kept : Kept is null ? kept : $"{kept}; {Kept}");

    public override string Message
    {
        get
        {
            string folder = System.IO.Path.GetDirectoryName(Path) is { Length: > 0 } parent ? parent : Path;
            string mount = MountPointOf(Path);
            var (cause, fix) = Fault switch
            {
                StorageFault.Full => ($"no space left on the filesystem at {mount}", $"free space on {mount}"),
                StorageFault.ReadOnly => ($"the filesystem at {mount} is read-only", $"make {mount} writable"),
                StorageFault.Denied => ("permission denied", $"give this user write access to {folder}"),
                StorageFault.Gone => ("it or its folder no longer exists (deleted or moved while reslab ran)", $"leave {folder} in place while reslab runs"),
                StorageFault.Busy => ("another process kept it locked past the busy timeout", "let the other reslab process finish"),
                _ => ($"the system reported an I/O error ({InnerException?.Message.ReplaceLineEndings(" ")})", "check the device (dmesg)"),
            };
            return $"{Action} {Path} failed: {cause}; {fix}"
                   + (Alternative is null ? "" : $" or {Alternative}")
                   + (Then is null ? "" : $", then {Then}")
                   + (Kept is null ? "" : $"; {Kept}");
        }
    }

    /// <summary>The storage fault <paramref name="e"/> reports, or null when it is not one (a bug, a bad file, a refused argument).</summary>
    public static StorageFault? FaultOf(Exception e) => e switch
    {
        SqliteException { SqliteExtendedErrorCode: ReadOnlyDbMoved } => StorageFault.Gone,
        SqliteException s => s.SqliteErrorCode switch
        {
            SqliteFull => StorageFault.Full,
            SqliteReadOnly => StorageFault.ReadOnly,
            SqlitePerm => StorageFault.Denied,
            SqliteBusy or SqliteLocked => StorageFault.Busy,
            SqliteIoErr or SqliteCantOpen => StorageFault.Failed,
            _ => null,
        },
        FileNotFoundException or DirectoryNotFoundException => StorageFault.Gone,
        UnauthorizedAccessException => StorageFault.Denied,
        // On Linux .NET gives an IOException the errno as its HResult; formats and protocols (SafeTensorsException) have other HResults.
        IOException io => io.HResult switch
        {
            ENOSPC or EDQUOT => StorageFault.Full,
            EROFS => StorageFault.ReadOnly,
            EPERM or EACCES => StorageFault.Denied,
            ENOENT => StorageFault.Gone,
            > 0 and < 4096 => StorageFault.Failed,
            _ => null,
        },
        _ => null,
    };

    const int EPERM = 1, ENOENT = 2, EACCES = 13, ENOSPC = 28, EROFS = 30, EDQUOT = 122;
    const int SqlitePerm = 3, SqliteBusy = 5, SqliteLocked = 6, SqliteReadOnly = 8, SqliteIoErr = 10, SqliteFull = 13, SqliteCantOpen = 14;
    const int ReadOnlyDbMoved = SqliteReadOnly | (4 << 8); // SQLITE_READONLY_DBMOVED: the database file was deleted or moved

    /// <summary>
    /// One line for a storage fault met outside the places that name their file (a cache, a library's
    /// own file): its message, which names the file when the system did, and what to do.
    /// </summary>
    public static string Describe(Exception e, StorageFault fault) => e.Message.ReplaceLineEndings(" ") + fault switch
    {
        StorageFault.Full => "; free space on that device and run the same command again",
        StorageFault.ReadOnly => "; the filesystem is read-only: make it writable or use a folder elsewhere",
        StorageFault.Denied => "; give this user access to it or use a folder elsewhere",
        StorageFault.Gone => "; a file or folder was deleted or moved while reslab ran: leave it in place and run the same command again",
        StorageFault.Busy => "; another process holds it locked: let that process finish and run the same command again",
        _ => "; the system reported an I/O error: check the device (dmesg) and run the same command again",
    };

    /// <summary>Runs <paramref name="body"/>; a storage fault it meets becomes a <see cref="StorageException"/> naming <paramref name="path"/>.</summary>
    public static T Guard<T>(string action, string path, Func<T> body)
    {
        try { return body(); }
        catch (Exception e) when (FaultOf(e) is { } fault)
        {
            throw new StorageException(e is SqliteException { SqliteErrorCode: SqliteIoErr or SqliteCantOpen } ? Examine(path) : fault, action, path, e);
        }
    }

    /// <summary>
    /// SQLite says only that it could not open or write a database (or its -wal and -shm files), without
    /// the system's reason: the folder tells it. It is gone; or creating a file there (removed at once)
    /// meets the fault; or its filesystem has almost no space left (less than SQLite's -shm and a few
    /// pages of -wal need); else it is an error of the device.
    /// </summary>
    static StorageFault Examine(string database)
    {
        string folder = System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(database))!;
        if (!Directory.Exists(folder)) return StorageFault.Gone;
        try
        {
            using (File.Create(System.IO.Path.Combine(folder, $".reslab-probe-{Environment.ProcessId}"), 1, FileOptions.DeleteOnClose)) { }
            return new DriveInfo(MountPointOf(folder)).AvailableFreeSpace < AlmostFull ? StorageFault.Full : StorageFault.Failed;
        }
        catch (Exception e) when (FaultOf(e) is { } fault) { return fault; }
    }

    const long AlmostFull = 1 << 20;

    /// <inheritdoc cref="Guard{T}"/>
    public static void Guard(string action, string path, Action body) => Guard(action, path, () => { body(); return 0; });

    /// <summary>Creates a folder (and its parents); a storage fault names it.</summary>
    public static void CreateFolder(string path) => Guard("creating the folder", path, () => Directory.CreateDirectory(path));

    /// <summary>The mount point of the filesystem holding <paramref name="path"/> (the folder itself when the mounts cannot be read).</summary>
    static string MountPointOf(string path)
    {
        string full = System.IO.Path.GetFullPath(path);
        try
        {
            return DriveInfo.GetDrives().Select(d => d.RootDirectory.FullName)
                .Where(root => root == "/" || full == root || full.StartsWith(root.TrimEnd('/') + "/", StringComparison.Ordinal))
                .MaxBy(root => root.Length) ?? full;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return System.IO.Path.GetDirectoryName(full) ?? full;
        }
    }
}
