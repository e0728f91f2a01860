using Microsoft.Data.Sqlite;
using ResidualLab.Processes;
using ResidualLab.Results.Store;
using ResidualLab.Training;

namespace ResidualLab.Tests.Results;

public class ResultsStoreTests
{
    static readonly RunEnvironment Env = new("0.1.0", "abc123", ".NET 10", "0.107.0", "2.10.0", "cpu", 1, "host", "linux", GitDirty: true,
        OneDnn: "oneDNN off (train.onednn = auto; its convolutions unsound at 1 thread (...))");

    [Fact]
    public void A_run_round_trips_with_its_metrics_diagnostics_and_environment()
    {
        string dir = TestSupport.TempDir();
        var config = TestSupport.TinyConfig("model.n_layer=2");
        using (var store = ResultsStore.Open(dir))
        {
            store.BeginRun(config, Env);
            Assert.Equal(RunState.Running, store.Find(config.RunId)!.Status);
            store.AddMetrics(config.RunId,
                [new StepMetrics(0, 4.0, 1e-3, 2.5, 10, 1000), new StepMetrics(1, 3.5, 1e-3, 1.5, 12, 900)],
                [new EvalMetrics(2, 3.4, 3.6)],
                [new Diagnostic(0, "grad_norm", 0, 0.7), new Diagnostic(0, "grad_norm", 1, 0.3)]);
            store.EndRun(config.RunId, new TrainResult(RunStatus.Done, 2, new EvalMetrics(2, 3.4, 3.6), 12345, 1.0, 11, 0), 950, 1 << 20, "tokens");
        }
        using (var store = ResultsStore.Open(dir)) // a second process would see the same
        {
            var run = store.Find(config.RunId)!;
            Assert.Equal((RunState.Done, "pre-norm", 2, 7L, 12345L, 3.6, 950.0, "tokens", 1L << 20),
                (run.Status, run.Connection, run.Depth, run.Seed, run.Parameters, run.ValLoss, run.ItemsPerSecond, run.ItemUnit, run.PeakRssBytes));
            Assert.Equal(config.Canonical, run.Config);
            Assert.NotNull(run.EndedAt);
            Assert.Equal([4.0, 3.5], store.Steps(config.RunId).Select(s => s.Loss));
            Assert.Equal(3.6, store.Evals(config.RunId).Single().ValLoss);
            Assert.Equal([0.7, 0.3], store.Diagnostics(config.RunId).Select(d => d.Value));
            Assert.Equal(Env, store.EnvironmentOf(config.RunId));
        }
    }

    [Fact]
    public void Starting_a_run_again_replaces_its_old_metrics_and_a_failure_keeps_the_error()
    {
        string dir = TestSupport.TempDir();
        var config = TestSupport.TinyConfig();
        using var store = ResultsStore.Open(dir);
        store.BeginRun(config, Env);
        store.AddMetrics(config.RunId, [new StepMetrics(0, 4.0, 1e-3, 2.5, 10, 1000)], [], []);
        store.BeginRun(config, Env);
        Assert.Empty(store.Steps(config.RunId));
        store.FailRun(config.RunId, "out of memory");
        var run = store.Find(config.RunId)!;
        Assert.Equal((RunState.Failed, "out of memory"), (run.Status, run.Error));
        Assert.Empty(store.MarkAbandoned()); // failed is not 'running': nothing to mark
    }

    [Fact]
    public void The_store_uses_wal_and_takes_writers_from_several_threads()
    {
        string dir = TestSupport.TempDir();
        var configs = Enumerable.Range(1, 4).Select(s => TestSupport.TinyConfig($"train.seed={s}")).ToList();
        using (var store = ResultsStore.Open(dir))
            Parallel.ForEach(configs, c =>
            {
                using var own = ResultsStore.Open(dir); // one connection each, as separate processes would have
                own.BeginRun(c, Env);
                for (int i = 0; i < 20; i++) own.AddMetrics(c.RunId, [new StepMetrics(i, 1, 1, 1, 1, 1)], [], []);
            });
        using var db = new SqliteConnection($"Data Source={Path.Combine(dir, ResultsStore.FileName)};Pooling=False");
        db.Open();
        using var cmd = db.CreateCommand();
        cmd.CommandText = "PRAGMA journal_mode";
        Assert.Equal("wal", cmd.ExecuteScalar());
        cmd.CommandText = "SELECT count(*) FROM steps";
        Assert.Equal(80L, cmd.ExecuteScalar());
    }

    [Fact]
    public void The_environment_of_this_process_names_the_libraries()
    {
        var env = RunEnvironment.Capture("cpu");
        Assert.StartsWith("2.10.0", env.LibTorch);
        Assert.StartsWith("0.107", env.TorchSharp);
        Assert.StartsWith(".NET 10", env.DotNet);
        Assert.Matches("^[0-9a-f]{7,40}$|^unknown$", env.GitCommit);
        Assert.True(env.Threads >= 1);
    }

    [Fact]
    public void The_build_records_whether_its_tree_had_uncommitted_changes()
    {
        // These tests are built from the repository they sit in, so the build could ask git. Whether the
        // answer was true or false depends on the tree at build time, which may have changed since.
        var git = ChildProcess.Run("git", ["status", "--porcelain"], workingDirectory: TestSupport.RepoRoot());
        if (git.ExitCode == 0) Assert.NotNull(BuildInfo.Dirty);
        Assert.Equal(BuildInfo.Dirty, RunEnvironment.Capture("cpu").GitDirty);
    }
}

public class ResultsStoreVersionTests
{
    [Fact]
    public void Each_run_records_the_version_that_produced_it()
    {
        string dir = TestSupport.TempDir();
        var config = TestSupport.TinyConfig();
        using var store = ResultsStore.Open(dir);
        store.BeginRun(config, RunEnvironment.Capture("cpu"));
        Assert.Equal(BuildInfo.Version, store.EnvironmentOf(config.RunId)!.Version);
    }

    [Fact]
    public void A_store_written_before_versions_were_recorded_opens_and_its_runs_read_as_unknown()
    {
        string dir = TestSupport.TempDir();
        var old = TestSupport.TinyConfig("train.seed=1");
        var current = TestSupport.TinyConfig("train.seed=2");
        using (var store = ResultsStore.Open(dir))
            store.BeginRun(old, RunEnvironment.Capture("cpu"));
        // Rewrite the environment table as the first schema had it: no reslab_version column.
        using (var db = new SqliteConnection($"Data Source={Path.Combine(dir, ResultsStore.FileName)};Pooling=False"))
        {
            db.Open();
            using var cmd = db.CreateCommand();
            cmd.CommandText = "ALTER TABLE environment DROP COLUMN reslab_version";
            cmd.ExecuteNonQuery();
        }
        using (var store = ResultsStore.Open(dir))
        {
            var env = store.EnvironmentOf(old.RunId)!;
            Assert.Equal((RunEnvironment.Unknown, "cpu"), (env.Version, env.Device));
            store.BeginRun(current, RunEnvironment.Capture("cpu"));
            Assert.Equal(BuildInfo.Version, store.EnvironmentOf(current.RunId)!.Version);
        }
    }

    [Fact]
    public void A_store_written_before_the_dirty_flag_and_the_onednn_choice_gains_them_on_open_and_old_runs_read_as_not_known()
    {
        string dir = TestSupport.TempDir();
        var old = TestSupport.TinyConfig("train.seed=1");
        var clean = TestSupport.TinyConfig("train.seed=2");
        var dirty = TestSupport.TinyConfig("train.seed=3");
        var env = new RunEnvironment("0.1.0", "abc123", ".NET 10", "0.107.0", "2.10.0", "cpu", 1, "host", "linux");
        using (var store = ResultsStore.Open(dir))
            store.BeginRun(old, env with { GitDirty = true });
        using (var db = new SqliteConnection($"Data Source={Path.Combine(dir, ResultsStore.FileName)};Pooling=False"))
        {
            db.Open();
            using var cmd = db.CreateCommand();
            cmd.CommandText = "ALTER TABLE environment DROP COLUMN git_dirty; ALTER TABLE environment DROP COLUMN onednn";
            cmd.ExecuteNonQuery();
        }
        using (var store = ResultsStore.Open(dir))
        {
            Assert.Null(store.EnvironmentOf(old.RunId)!.GitDirty);
            Assert.Null(store.EnvironmentOf(old.RunId)!.OneDnn);
            store.BeginRun(clean, env with { GitDirty = false, OneDnn = "oneDNN on (train.onednn = on)" });
            store.BeginRun(dirty, env with { GitDirty = true });
            Assert.Equal("oneDNN on (train.onednn = on)", store.EnvironmentOf(clean.RunId)!.OneDnn);
            Assert.False(store.EnvironmentOf(clean.RunId)!.GitDirty);
            Assert.True(store.EnvironmentOf(dirty.RunId)!.GitDirty);
            Assert.Equal("abc123 (dirty)", store.EnvironmentOf(dirty.RunId)!.CommitDescription);
            Assert.Equal("abc123", store.EnvironmentOf(clean.RunId)!.CommitDescription);
        }
    }

    [Fact]
    public void A_store_written_before_the_cpu_column_gains_it_on_open_and_new_runs_record_the_host_cpu()
    {
        string dir = TestSupport.TempDir();
        var old = TestSupport.TinyConfig("train.seed=1");
        var current = TestSupport.TinyConfig("train.seed=2");
        using (var store = ResultsStore.Open(dir))
            store.BeginRun(old, new RunEnvironment("0.1.0", "abc123", ".NET 10", "0.107.0", "2.10.0", "cpu", 1, "host", "linux", Cpu: "a CPU"));
        using (var db = new SqliteConnection($"Data Source={Path.Combine(dir, ResultsStore.FileName)};Pooling=False"))
        {
            db.Open();
            using var cmd = db.CreateCommand();
            cmd.CommandText = "ALTER TABLE environment DROP COLUMN cpu";
            cmd.ExecuteNonQuery();
        }
        using (var store = ResultsStore.Open(dir))
        {
            Assert.Null(store.EnvironmentOf(old.RunId)!.Cpu);
            store.BeginRun(current, RunEnvironment.Capture("cpu"));
            Assert.Equal(CpuIdentity.Host.Describe(), store.EnvironmentOf(current.RunId)!.Cpu);
        }
    }
}
