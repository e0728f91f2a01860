using ResidualLab.Experiments;
using ResidualLab.Results.Store;
using ResidualLab.Tests.Experiments;

namespace ResidualLab.Tests.Cli;

/// <summary>reslab run, reslab status and the Slurm runner's bad input, without a cluster.</summary>
[Trait(Slow.Category, Slow.Value)]
public class ClusterCliTests
{
    [Fact]
    public void Run_trains_one_planned_run_into_the_store_and_an_unknown_id_is_one_line_error()
    {
        string results = TestSupport.TempDir();
        var plan = TinySweep.Plan(TinySweep.WriteConfig(TestSupport.TempDir(), "\"train.seed\" = [1, 2]", maxIters: 10));
        SweepFolder.WritePlan(plan, results);
        string id = plan.Runs[1].RunId;

        var run = CliProcess.Run(["run", id, "--results", results], new Dictionary<string, string> { ["SLURM_CPUS_PER_TASK"] = "1" });
        Assert.True(run.ExitCode == 0, run.StdErr + run.StdOut);
        Assert.Contains($"run {id}  1 threads", run.StdOut);
        using (var store = ResultsStore.Open(results))
        {
            Assert.Equal([id], store.Runs().Select(r => r.RunId));
            Assert.Equal(RunState.Done, store.Find(id)!.Status);
            Assert.Equal(1, store.EnvironmentOf(id)!.Threads);
        }

        var repeat = CliProcess.Run(["run", id, "--results", results]);
        Assert.Equal(0, repeat.ExitCode);
        Assert.Contains("already done, nothing to do", repeat.StdOut);

        var status = CliProcess.Run(["status", results]);
        Assert.Equal(0, status.ExitCode);
        Assert.Contains("2 runs: 1 done, 1 planned", status.StdOut);
        Assert.Contains("pre-norm L1 s1", status.StdOut);

        // Under Slurm a task that asked for no CPU count has one.
        var again = CliProcess.Run(["run", plan.Runs[0].RunId, "--results", results], new Dictionary<string, string> { ["SLURM_JOB_ID"] = "12" });
        Assert.Contains($"run {plan.Runs[0].RunId}  1 threads", again.StdOut);

        var line = CliProcess.AssertOneLineError(CliProcess.Run(["run", id[..11] + "x", "--results", results]));
        Assert.Contains($"unknown run id '{id[..11]}x'", line);
        Assert.Contains($"did you mean '{id}'", line);
    }

    [Theory]
    [InlineData("--time", "ten", "--time 'ten' is not a Slurm time limit")]
    [InlineData("--cpus-per-task", "0", "--cpus-per-task must be at least 1")]
    [InlineData("--parallel", "2", "--parallel goes with --runner local")]
    public void Bad_slurm_options_are_one_line_errors(string option, string value, string message)
    {
        string config = TinySweep.WriteConfig(TestSupport.TempDir(), "\"train.seed\" = [1, 2]");
        var line = CliProcess.AssertOneLineError(CliProcess.Run(["sweep", config, "--runner", "slurm", option, value]));
        Assert.Contains(message, line);
    }

    [Fact]
    public void The_slurm_runner_without_sbatch_on_the_path_is_one_line_error()
    {
        string dir = TestSupport.TempDir();
        string config = TinySweep.WriteConfig(dir, "\"train.seed\" = [1, 2]");
        var outcome = CliProcess.Run(["sweep", config, "--runner", "slurm", "--out", Path.Combine(dir, "out")],
            new Dictionary<string, string> { ["PATH"] = TestSupport.TempDir() });
        Assert.Contains("sbatch not found on PATH", CliProcess.AssertOneLineError(outcome));
    }

    [Fact]
    public void Slurm_options_without_the_slurm_runner_are_one_line_error()
    {
        string config = TinySweep.WriteConfig(TestSupport.TempDir(), "\"train.seed\" = [1, 2]");
        var line = CliProcess.AssertOneLineError(CliProcess.Run(["sweep", config, "--retry-failed"]));
        Assert.Contains("go with --runner slurm", line);
    }
}
