using ResidualLab.Processes;

namespace ResidualLab.Tests.Results;

/// <summary>
/// A small tmpfs mounted for one test and unmounted when disposed: a real filesystem that fills up, so
/// the kernel itself answers ENOSPC (or EROFS once remounted read-only) to .NET's writes and to SQLite's
/// alike, in the test process and in the reslab it starts. (RLIMIT_FSIZE would stop every file of the
/// process, the runtime's included, and kills it with SIGXFSZ; a mock would not show what SQLite does.)
/// Mounting needs root, as the tests run here and in CI.
/// </summary>
sealed class SmallFilesystem : IDisposable
{
    public string Root { get; }

    SmallFilesystem(string root) => Root = root;

    public static SmallFilesystem Mount(int kibibytes)
    {
        string root = TestSupport.TempDir();
        var mount = Command("mount", "-t", "tmpfs", "-o", $"size={kibibytes}k", "tmpfs", root);
        Assert.True(mount.ExitCode == 0,
            $"this test mounts a {kibibytes} KiB tmpfs at {root} to fill a real filesystem, which needs root (or CAP_SYS_ADMIN): "
            + $"'mount -t tmpfs' exited with {mount.ExitCode}: {mount.LastErrorLine}");
        return new SmallFilesystem(root);
    }

    /// <summary>Fills every byte left with a ballast file, as another program filling the disk would.</summary>
    public void Fill()
    {
        using var ballast = new FileStream(BallastPath, FileMode.Create, FileAccess.Write, FileShare.None, bufferSize: 0);
        foreach (int size in new[] { 1 << 16, 1 << 12, 1 })
        {
            var block = new byte[size];
            try
            {
                while (true) ballast.Write(block);
            }
            catch (IOException) { } // no room for another block of this size
        }
    }

    /// <summary>Frees the space <see cref="Fill"/> took.</summary>
    public void Free() => File.Delete(BallastPath);

    public void RemountReadOnly() => Assert.Equal(0, Command("mount", "-o", "remount,ro", Root).ExitCode);

    string BallastPath => Path.Combine(Root, "ballast");

    static ChildResult Command(string program, params string[] args) => ChildProcess.Run(program, args, TimeSpan.FromSeconds(30));

    public void Dispose()
    {
        // Lazy when busy (a child still holding a file): the mount goes as soon as it is free, never left behind.
        if (Command("umount", Root).ExitCode != 0) Command("umount", "-l", Root);
        Directory.Delete(Root, recursive: true);
    }
}
