using ResidualLab.Cluster;
using ResidualLab.Experiments;
using ResidualLab.Results.Store;
using ResidualLab.Tests.Experiments;
using ResidualLab.Training;

namespace ResidualLab.Tests.Cluster;

/// <summary>How the store, the recorded job arrays and the queue combine into each run's state, and what a resubmission takes.</summary>
public class SweepStatusTests
{
    [Fact]
    public void States_come_from_the_store_the_queue_and_the_submissions()
    {
        string results = TestSupport.TempDir();
        var plan = TinySweep.Plan(TinySweep.WriteConfig(TestSupport.TempDir(), "\"train.seed\" = [1, 2, 3, 4, 5, 6]"));
        SweepFolder.WritePlan(plan, results);
        var ids = plan.Runs.Select(r => r.RunId).ToList();
        using var store = ResultsStore.Open(results);
        store.RecordSubmission("41", ids.Take(5).ToList());
        var env = new RunEnvironment("v", "c", "d", "t", "l", "cpu", 1, "h", "o");
        store.BeginRun(plan.Runs[0], env);
        store.EndRun(ids[0], new TrainResult(RunStatus.Done, 20, null, 1, 1, 1, 1, null), 1, 1); // done
        store.BeginRun(plan.Runs[1], env);                                                         // its task is running
        store.BeginRun(plan.Runs[2], env);                                                         // its task was killed
        // ids[3]: queued; ids[4]: its task was cancelled before it started; ids[5]: never submitted.
        var live = new Dictionary<string, string> { ["41_1"] = "RUNNING", ["41_3"] = "PENDING" };

        var views = SweepStatus.Of(results, store, live).ToDictionary(v => v.RunId);
        Assert.Equal([RunState.Done, RunState.Running, RunState.Failed, SweepStatus.Queued, RunState.Failed, SweepStatus.Planned],
            ids.Select(id => views[id].State));
        Assert.Equal("41_2", views[ids[2]].Task);
        Assert.Contains("ended before the run finished", views[ids[2]].Note);
        Assert.Contains("ended before the run started", views[ids[4]].Note);

        var all = SweepStatus.Of(results, store, live);
        Assert.Equal([ids[2], ids[4], ids[5]], SweepStatus.ToSubmit(plan, all, onlyFailed: false));
        Assert.Equal([ids[2], ids[4]], SweepStatus.ToSubmit(plan, all, onlyFailed: true));
    }

    [Fact]
    public void Without_a_queue_to_ask_submitted_runs_stay_as_the_store_has_them()
    {
        string results = TestSupport.TempDir();
        var plan = TinySweep.Plan(TinySweep.WriteConfig(TestSupport.TempDir(), "\"train.seed\" = [1, 2]"));
        SweepFolder.WritePlan(plan, results);
        using var store = ResultsStore.Open(results);
        store.RecordSubmission("7", [plan.Runs[0].RunId, plan.Runs[1].RunId]);
        store.BeginRun(plan.Runs[0], new RunEnvironment("v", "c", "d", "t", "l", "cpu", 1, "h", "o"));
        var views = SweepStatus.Of(results, store, live: null).ToDictionary(v => v.RunId);
        Assert.Equal(RunState.Running, views[plan.Runs[0].RunId].State);
        Assert.Equal(SweepStatus.Submitted, views[plan.Runs[1].RunId].State);
    }

    [Theory]
    [InlineData("90"), InlineData("1:30:00"), InlineData("2-00:00:00"), InlineData("2-12"), InlineData("UNLIMITED")]
    public void Slurm_time_limits_are_accepted(string time) => new SlurmOptions(Time: time).Checked();

    [Fact]
    public void Resources_become_sbatch_options() =>
        Assert.Equal(["--partition=gpu", "--time=1:00:00", "--cpus-per-task=8", "--gres=gpu:1"],
            new SlurmOptions("gpu", "1:00:00", 8, 1).Checked().SbatchArgs());
}
