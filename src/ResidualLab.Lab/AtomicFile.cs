using System.Text;

namespace ResidualLab;

/// <summary>
/// Writes a file so that a kill, a crash or a full disk never leaves part of it under its name: the
/// bytes go to NAME.tmp in the same folder, are flushed to the device, and the temporary file is
/// renamed over NAME (a reader sees the old file or the new one). A write that fails removes the
/// temporary file; a storage fault (<see cref="StorageException"/>) names NAME.
/// </summary>
internal static class AtomicFile
{
    public const string TempSuffix = ".tmp";

    public static void Write(string path, Action<Stream> write)
    {
        string tmp = path + TempSuffix;
        try
        {
            using (var file = new FileStream(tmp, FileMode.Create, FileAccess.Write, FileShare.None))
            {
                write(file);
                file.Flush(flushToDisk: true);
            }
            File.Move(tmp, path, overwrite: true);
        }
        catch (Exception e)
        {
            Remove(tmp);
            if (StorageException.FaultOf(e) is { } fault) throw new StorageException(fault, "writing", path, e);
            throw;
        }
    }

    /// <summary>Writes <paramref name="text"/> as UTF-8 without a byte order mark, as File.WriteAllText does.</summary>
    public static void WriteText(string path, string text) => Write(path, file => file.Write(Encoding.UTF8.GetBytes(text)));

    /// <summary>Deletes a file if it can; what is left behind is harmless (a temporary file, an old checkpoint).</summary>
    static void Remove(string path)
    {
        try { File.Delete(path); }
        catch (Exception e) when (StorageException.FaultOf(e) is not null) { }
    }
}
