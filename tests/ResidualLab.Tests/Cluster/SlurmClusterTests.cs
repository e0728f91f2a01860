using System.Diagnostics;
using ResidualLab.Processes;
using ResidualLab.Results.Store;
using ResidualLab.Tests.Cli;
using ResidualLab.Tests.Experiments;

namespace ResidualLab.Tests.Cluster;

/// <summary>
/// A sweep through a real single-node Slurm cluster started by scripts/slurm-local.sh: one job array,
/// every run in the store with the losses of the in-process sweep, then a retry of one failed run only.
/// </summary>
[Trait(Slow.Category, Slow.Value)]
public class SlurmClusterTests
{
    [Fact]
    public void A_sweep_through_a_local_slurm_cluster_fills_the_store_and_a_retry_resubmits_only_failures()
    {
        TestSupport.RequirePackages("slurmctld", "slurmd", "slurm-client", "munge");
        string dir = TestSupport.TempDir();
        string config = TinySweep.WriteConfig(dir, """
            "connection.name" = ["pre-norm", "none"]
            "train.seed" = [1, 2]
            """);
        string results = Path.Combine(dir, "out");
        string folder = Path.Combine(results, "sweep");
        string clusterDir = $"/tmp/slt.{Guid.NewGuid():N}"[..16]; // Unix socket paths are short
        var env = new Dictionary<string, string> { ["SLURM_CONF"] = Script("start", clusterDir) };
        try
        {
            var submit = CliProcess.Run(["sweep", config, "--out", results, "--runner", "slurm", "--cpus-per-task", "1"], env);
            Assert.True(submit.ExitCode == 0, submit.StdErr + submit.StdOut);
            Assert.Matches(@"submitted 4 as Slurm job array \d+ \(tasks 0-3\)", submit.StdOut);
            WaitForDone(folder, 4, env);

            using (var store = ResultsStore.Open(folder))
            using (var inProcess = ResultsStore.Open(TinySweep.SharedStudy))
            {
                var runs = store.Runs();
                Assert.Equal(4, runs.Count);
                Assert.All(runs, r => Assert.Equal(RunState.Done, r.Status));
                Assert.All(runs, r => Assert.Equal(20, store.Steps(r.RunId).Count));
                Assert.All(runs, r => Assert.Equal(1, store.EnvironmentOf(r.RunId)!.Threads)); // from SLURM_CPUS_PER_TASK
                foreach (var r in runs) // same configs (another corpus file, same text) as the in-process study's depth-1 runs
                    Assert.Equal(inProcess.Runs().Single(s => s.Label == r.Label).ValLoss, r.ValLoss);
                Assert.Equal(4, store.Submissions().Count);
                store.FailRun(runs[2].RunId, "simulated failure");
            }

            var retry = CliProcess.Run(["sweep", config, "--out", results, "--runner", "slurm", "--retry-failed"], env);
            Assert.True(retry.ExitCode == 0, retry.StdErr + retry.StdOut);
            Assert.Contains("(3 done, 1 failed); submitted 1 as Slurm job array", retry.StdOut);
            WaitForDone(folder, 4, env);
            using (var store = ResultsStore.Open(folder))
                Assert.Equal(5, store.Submissions().Count);

            var again = CliProcess.Run(["sweep", config, "--out", results, "--runner", "slurm"], env);
            Assert.Contains("nothing to submit (4 done)", again.StdOut);
        }
        finally
        {
            Script("stop", clusterDir);
        }
    }

    static void WaitForDone(string folder, int runs, IDictionary<string, string> env)
    {
        var clock = Stopwatch.StartNew();
        string last = "";
        while (clock.Elapsed < TimeSpan.FromSeconds(60))
        {
            var status = CliProcess.Run(["status", folder], env);
            last = status.StdOut + status.StdErr;
            if (last.Contains($"{runs} runs: {runs} done")) return;
            Thread.Sleep(1000);
        }
        Assert.Fail($"the sweep did not finish in 60 s:\n{last}");
    }

    /// <summary>Runs scripts/slurm-local.sh; returns the SLURM_CONF it prints.</summary>
    static string Script(string verb, string clusterDir)
    {
        var script = ChildProcess.Run("bash", [ScriptPath(), verb, clusterDir]);
        Assert.True(script.ExitCode == 0, $"slurm-local.sh {verb}: {script.StdErr}");
        return script.StdOut.Trim().Replace("export SLURM_CONF=", "");
    }

    static string ScriptPath()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
        {
            string candidate = Path.Combine(d.FullName, "scripts", "slurm-local.sh");
            if (File.Exists(candidate)) return candidate;
        }
        throw new FileNotFoundException("scripts/slurm-local.sh not found above the test folder");
    }
}
