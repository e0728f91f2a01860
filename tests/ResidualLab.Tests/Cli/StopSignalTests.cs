using System.Diagnostics;
using ResidualLab.Processes;
using ResidualLab.Results;
using ResidualLab.Results.Store;
using ResidualLab.Training;

namespace ResidualLab.Tests.Cli;

/// <summary>
/// A sweep stopped by SIGTERM (kill, a scheduler's stop) passes the stop on to its child runs: none outlives it,
/// each records itself as interrupted with its checkpoint kept, and the same sweep run again resumes them.
/// </summary>
[Trait(Slow.Category, Slow.Value)]
public class StopSignalTests
{
    [Fact]
    public async Task A_parallel_sweep_stopped_by_SIGTERM_leaves_no_child_running_and_a_rerun_resumes_its_runs()
    {
        string corpus = Path.Combine(TestSupport.TempDir(), "corpus.txt");
        File.WriteAllText(corpus, TestSupport.TinyText());
        string sweepFile = Path.Combine(TestSupport.TempDir(), "seeds.toml");
        File.WriteAllText(sweepFile, $"""
            [data]
            path = "{corpus}"
            [model]
            n_layer = 1
            d_model = 16
            n_head = 2
            block_size = 16
            [train]
            max_iters = 400
            batch_size = 4
            eval_interval = 100
            eval_batches = 2
            checkpoint_interval = 10
            [sweep]
            "train.seed" = [1, 2]
            """);
        string outDir = TestSupport.TempDir();
        string results = Path.Combine(outDir, "seeds"), runs = Path.Combine(results, "runs");
        string[] sweep = ["sweep", sweepFile, "--out", outDir, "--parallel", "2", "--threads", "1", "--no-estimate"];
        bool BothCheckpointed() => Directory.Exists(runs) && Directory.GetDirectories(runs) is { Length: 2 } dirs
            && dirs.All(d => TrainingCheckpoint.List(d).Count > 0);

        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        psi.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "reslab.dll"));
        foreach (var a in sweep) psi.ArgumentList.Add(a);
        using (var parent = Process.Start(psi)!)
        {
            var stdout = parent.StandardOutput.ReadToEndAsync();
            var stderr = parent.StandardError.ReadToEndAsync();
            var clock = Stopwatch.StartNew();
            while (!BothCheckpointed() && !parent.HasExited && clock.Elapsed < TimeSpan.FromSeconds(120)) Thread.Sleep(10);
            Assert.False(parent.HasExited, $"the sweep ended before it could be stopped: {(parent.HasExited ? await stderr : "")}");
            Assert.Equal(0, ChildProcess.Run("kill", ["-TERM", parent.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]).ExitCode);
            Assert.True(parent.WaitForExit(TimeSpan.FromSeconds(60)), "the sweep did not stop within a minute of SIGTERM");
            Assert.Equal(1, parent.ExitCode);
            Assert.Contains("2 unfinished", await stdout);
            await stderr;
        }

        using (var store = ResultsStore.OpenExisting(results))
        {
            var stopped = store.Runs();
            Assert.Equal(2, stopped.Count);
            Assert.All(stopped, r => Assert.Equal(RunState.Interrupted, r.Status));
            Assert.All(stopped, r => Assert.False(FolderLock.IsAlive(r.Pid), $"run {r.RunId}'s process {r.Pid} outlived the sweep"));
            Assert.All(stopped, r => Assert.NotEmpty(TrainingCheckpoint.List(Path.Combine(runs, r.RunId))));
        }

        var rerun = CliProcess.Run(sweep);
        Assert.True(rerun.ExitCode == 0, rerun.StdErr);
        Assert.Contains("2 runs: 0 already finished (skipped), 2 trained, 0 unfinished", rerun.StdOut);
        Assert.Matches(@"resuming at step [1-9]\d*0/400", rerun.StdOut);
        using var after = ResultsStore.OpenExisting(results);
        Assert.All(after.Runs(), r => Assert.Equal(RunState.Done, r.Status));
    }
}
