using System.Diagnostics;
using ResidualLab.Results;
using ResidualLab.Results.Store;
using ResidualLab.Tests.Cli;
using ResidualLab.Tests.Experiments;

namespace ResidualLab.Tests.Results;

/// <summary>One sweep or Slurm submission at a time per results folder; a lock left by a dead process is taken over.</summary>
[Trait(Slow.Category, Slow.Value)]
public class FolderLockTests
{
    /// <summary>Writes a lock file as a local sweep of process <paramref name="pid"/> on <paramref name="host"/> would; returns its path.</summary>
    static string LockFile(string folder, int pid, string host)
    {
        string path = Path.Combine(folder, FolderLock.FileName);
        File.WriteAllText(path, $"pid {pid}\nhost {host}\nsince 2026-01-02T03:04:05.0000000+00:00\nwhat a local sweep\n");
        return path;
    }

    static int DeadPid()
    {
        using var p = Process.Start(new ProcessStartInfo("true"))!;
        p.WaitForExit();
        return p.Id;
    }

    [Fact]
    public void A_held_lock_refuses_a_second_holder_naming_the_first_and_is_free_once_released()
    {
        string folder = TestSupport.TempDir();
        using (FolderLock.Acquire(folder, "a local sweep", _ => throw new InvalidOperationException("no note expected")))
        {
            var ex = Assert.Throws<ConfigException>(() => FolderLock.Acquire(folder, "a Slurm submission", _ => { }));
            Assert.Contains($"'{folder}' is in use by a local sweep (pid {Environment.ProcessId} on {Environment.MachineName}, since ", ex.Message);
            Assert.Contains("wait until it ends", ex.Message);
            Assert.DoesNotContain("\n", ex.Message);
        }
        Assert.False(File.Exists(Path.Combine(folder, FolderLock.FileName)));
        using (FolderLock.Acquire(folder, "a Slurm submission", _ => { })) { }
    }

    [Fact]
    public void A_lock_of_a_process_gone_from_this_host_is_taken_over_with_a_note()
    {
        string folder = TestSupport.TempDir();
        int dead = DeadPid();
        LockFile(folder, dead, Environment.MachineName);
        var notes = new List<string>();
        using (FolderLock.Acquire(folder, "a local sweep", notes.Add))
            Assert.Contains($"pid {Environment.ProcessId}\n", File.ReadAllText(Path.Combine(folder, FolderLock.FileName)));
        Assert.Equal($"took over the lock of '{folder}' from a local sweep (pid {dead} on {Environment.MachineName}, since 2026-01-02 03:04:05 UTC), which is gone", notes.Single());
    }

    [Fact]
    public void A_lock_of_another_host_is_left_alone_and_the_error_says_how_to_clear_it()
    {
        string folder = TestSupport.TempDir();
        string path = LockFile(folder, DeadPid(), "login-node-7");
        var ex = Assert.Throws<ConfigException>(() => FolderLock.Acquire(folder, "a local sweep", _ => { }));
        Assert.Contains("on login-node-7", ex.Message);
        Assert.Contains($"if that process is gone, delete {path}", ex.Message);
        Assert.True(File.Exists(path));
    }

    [Fact]
    public void A_slurm_submission_and_a_second_sweep_are_refused_while_a_local_sweep_runs_and_a_killed_sweeps_lock_is_taken_over()
    {
        string dir = TestSupport.TempDir();
        string config = TinySweep.WriteConfig(dir, "\"train.seed\" = [1]", maxIters: 20000);
        string results = Path.Combine(dir, "out");
        string folder = Path.Combine(results, "sweep");
        string lockFile = Path.Combine(folder, FolderLock.FileName);

        Assert.True(CliProcess.KillOnceWritten(["sweep", config, "--out", results], lockFile, whileRunning: () =>
        {
            var slurm = CliProcess.AssertOneLineError(CliProcess.Run(["sweep", config, "--out", results, "--runner", "slurm"]));
            Assert.Contains($"'{folder}' is in use by a local sweep (pid ", slurm);
            var local = CliProcess.AssertOneLineError(CliProcess.Run(["sweep", config, "--out", results]));
            Assert.Contains("is in use by a local sweep", local);
        }), "the sweep ended before it could be stopped");

        // The killed sweep left its lock behind: the next sweep takes it over and finishes the run.
        Assert.True(File.Exists(lockFile));
        var next = CliProcess.Run(["sweep", config, "--out", results, "--set", "train.max_iters=5"]);
        Assert.True(next.ExitCode == 0, next.StdErr + next.StdOut);
        Assert.Contains($"took over the lock of '{folder}' from a local sweep", next.StdOut);
        Assert.False(File.Exists(lockFile));
    }

    [Fact]
    public void A_local_sweep_is_refused_while_slurm_tasks_of_the_folder_are_queued_or_running()
    {
        string dir = TestSupport.TempDir();
        string config = TinySweep.WriteConfig(dir, "\"train.seed\" = [1]", maxIters: 3);
        string folder = Path.Combine(dir, "out", "sweep");
        using (var store = ResultsStore.Open(folder))
            store.RecordSubmission("4242", [TinySweep.Plan(config).Runs[0].RunId]);
        string bin = Path.Combine(dir, "bin");
        Directory.CreateDirectory(bin);
        string squeue = Path.Combine(bin, "squeue");
        File.WriteAllText(squeue, "#!/bin/sh\necho '4242|0|RUNNING'\n"); // what squeue -h -r -o '%F|%K|%T' prints
        if (OperatingSystem.IsLinux()) File.SetUnixFileMode(squeue, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);

        var line = CliProcess.AssertOneLineError(CliProcess.Run(["sweep", config, "--out", Path.Combine(dir, "out")],
            new Dictionary<string, string> { ["PATH"] = $"{bin}:{Environment.GetEnvironmentVariable("PATH")}" }));
        Assert.Contains($"'{folder}' has 1 Slurm task(s) of job array 4242 queued or running", line);
        Assert.Contains("scancel 4242", line);
    }
}
