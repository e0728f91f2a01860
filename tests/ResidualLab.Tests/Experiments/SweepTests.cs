using Microsoft.Data.Sqlite;
using ResidualLab.Config;
using ResidualLab.Diagnostics;
using ResidualLab.Results.Store;

namespace ResidualLab.Tests.Experiments;

[Trait(Slow.Category, Slow.Value)]
public class SweepTests
{
    [Fact]
    public void Grid_expands_every_combination_with_the_last_axis_fastest()
    {
        string config = TinySweep.WriteConfig(TestSupport.TempDir(), """
            "connection.name" = ["pre-norm", "none", "post-norm"]
            "model.n_layer" = [1, 3]
            "train.seed" = [1, 2]
            """);
        var plan = TinySweep.Plan(config);
        Assert.Equal(12, plan.Runs.Count);
        Assert.Equal(12, plan.Runs.Select(r => r.RunId).Distinct().Count());
        Assert.Equal(["pre-norm L1 s1", "pre-norm L1 s2", "pre-norm L3 s1"], plan.Runs.Take(3).Select(r => r.Label));
        Assert.Equal("post-norm L3 s2", plan.Runs[^1].Label);
        Assert.Equal("connection.name (3) x model.n_layer (2) x train.seed (2)", SweepGrid.Describe(plan.Axes));
    }

    [Fact]
    public void Keys_outside_the_run_id_do_not_duplicate_runs()
    {
        string config = TinySweep.WriteConfig(TestSupport.TempDir(), """
            "train.threads" = [1, 2]
            "train.seed" = [1, 2]
            """);
        Assert.Equal(2, TinySweep.Plan(config).Runs.Count);
    }

    [Theory]
    [InlineData("\"model.n_layers\" = [1, 2]", "unknown sweep key 'model.n_layers' (did you mean 'model.n_layer'?)")]
    [InlineData("n_layer = [1, 2]", "sweep key 'n_layer' needs its section")]
    [InlineData("\"train.seed\" = []", "sweep key 'train.seed' has no values")]
    [InlineData("\"model.n_layer\" = [1, 0]", "'model.n_layer' must be in [1, 1000], got 0")]
    public void Bad_sweep_entries_name_the_file_and_line(string entry, string message)
    {
        string config = TinySweep.WriteConfig(TestSupport.TempDir(), entry);
        var ex = Assert.Throws<ConfigException>(() => TinySweep.Plan(config));
        Assert.Contains($"{config}:22:", ex.Message);
        Assert.Contains(message, ex.Message);
    }

    [Fact]
    public void A_restarted_sweep_redoes_only_unfinished_runs()
    {
        string dir = TestSupport.TempDir();
        string config = TinySweep.WriteConfig(dir, """
            "connection.name" = ["pre-norm", "none"]
            "train.seed" = [1, 2]
            """);
        string results = Path.Combine(dir, "results");
        var first = TinySweep.Run(config, results);
        Assert.Equal(4, first.Trained.Count);
        Assert.Empty(first.Skipped);

        var plan = TinySweep.Plan(config);
        string killed = plan.Runs[1].RunId, failed = plan.Runs[2].RunId;
        DateTimeOffset untouchedStart;
        using (var store = ResultsStore.Open(results))
        {
            untouchedStart = store.Find(plan.Runs[0].RunId)!.StartedAt;
            // As a killed sweep leaves them: 'running' under a process that is gone, and a run that threw.
            SetStatus(store.FilePath, killed, RunState.Running, DeadPid());
            store.FailRun(failed, "simulated failure");
        }

        var second = TinySweep.Run(config, results);
        Assert.Equal([killed], second.Abandoned);
        Assert.Equal(new[] { killed, failed }.Order(), second.Trained.Order());
        Assert.Equal(2, second.Skipped.Count);
        using (var store = ResultsStore.Open(results))
        {
            Assert.All(plan.Runs, r => Assert.Equal(RunState.Done, store.Find(r.RunId)!.Status));
            Assert.Equal(untouchedStart, store.Find(plan.Runs[0].RunId)!.StartedAt);
            Assert.Equal(20, store.Steps(killed).Count); // the redone run's metrics replace the old ones
        }

        var third = TinySweep.Run(config, results);
        Assert.Empty(third.Trained);
        Assert.Equal(4, third.Skipped.Count);
    }

    [Fact]
    public void Runs_trained_side_by_side_in_child_processes_give_the_same_losses_as_runs_trained_one_at_a_time()
    {
        string results = Path.Combine(TestSupport.TempDir(), "parallel");
        var outcome = TinySweep.Run(TinySweep.SharedStudyConfig, results, parallel: 3);
        Assert.Empty(outcome.Unfinished);
        Assert.Equal(8, outcome.Trained.Count);
        using var sequential = ResultsStore.Open(TinySweep.SharedStudy);
        using var parallel = ResultsStore.Open(results);
        foreach (var run in sequential.Runs())
            Assert.Equal(run.ValLoss, parallel.Find(run.RunId)!.ValLoss);
    }

    [Fact]
    public void The_probe_records_each_blocks_gradient_norm_at_init_every_interval_and_the_last_step()
    {
        using var store = ResultsStore.Open(TinySweep.SharedStudy);
        var run = store.Runs().First(r => r.Depth == 2 && r.Connection == "none");
        var readings = store.Diagnostics(run.RunId).Where(d => d.Name == GradientNormProbe.Name).ToList();
        Assert.Equal([(0, 0), (0, 1), (10, 0), (10, 1), (19, 0), (19, 1)], readings.Select(d => (d.Step, d.Index)));
        Assert.All(readings, d => Assert.True(d.Value > 0 && double.IsFinite(d.Value), $"{d}"));
    }

    static void SetStatus(string dbPath, string runId, string status, int pid)
    {
        using var db = new SqliteConnection($"Data Source={dbPath};Pooling=False");
        db.Open();
        using var cmd = db.CreateCommand();
        cmd.CommandText = "UPDATE runs SET status = $s, pid = $p WHERE run_id = $id";
        cmd.Parameters.AddWithValue("$s", status);
        cmd.Parameters.AddWithValue("$p", pid);
        cmd.Parameters.AddWithValue("$id", runId);
        Assert.Equal(1, cmd.ExecuteNonQuery());
    }

    /// <summary>The id of a process that has exited.</summary>
    static int DeadPid()
    {
        using var p = System.Diagnostics.Process.Start("true")!;
        p.WaitForExit();
        return p.Id;
    }
}
