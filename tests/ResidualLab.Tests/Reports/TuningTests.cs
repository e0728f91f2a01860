using ResidualLab.Config;
using ResidualLab.Experiments;
using ResidualLab.Reports;
using ResidualLab.Results.Store;
using ResidualLab.Training;

namespace ResidualLab.Tests.Reports;

/// <summary>
/// Per-arm learning-rate selection on planted stores: validation chooses, test reports. The planted test
/// losses rank the learning rates the other way round, so a selection that read them would choose differently.
/// </summary>
public class TuningTests
{
    static readonly RunEnvironment Env = new("0.1.0", "abc123", ".NET 10", "0.107.0", "2.10.0", "cpu", 1, "host", "linux");

    /// <summary>Final (val, test) loss of each planted run: scheme, lr, seed.</summary>
    static (double Val, double Test) Planted(string scheme, double lr, long seed)
    {
        double noise = 0.002 * seed;
        double val = scheme == "pre-norm"
            ? lr switch { 1e-3 => 2.00, 3e-3 => 2.10, _ => 2.30 }   // pre-norm's best by validation: 1e-3
            : lr switch { 1e-3 => 2.60, 3e-3 => 2.40, _ => 2.20 };  // none's: 1e-2, the highest tried
        // Test ranks the learning rates the other way round, and sits 0.5 nats away from validation.
        double test = scheme == "pre-norm"
            ? lr switch { 1e-3 => 2.80, 3e-3 => 2.60, _ => 2.50 }
            : lr switch { 1e-3 => 2.90, 3e-3 => 3.00, _ => 3.10 };
        return (val + noise, test + noise);
    }

    static string PlantedFolder(Func<string, double, long, (double Val, double Test)> losses)
    {
        string dir = TestSupport.TempDir();
        var plan = new List<RunConfig>();
        using var store = ResultsStore.Open(dir);
        foreach (string scheme in new[] { "pre-norm", "none" })
            foreach (double lr in new[] { 1e-3, 3e-3, 1e-2 })
                foreach (long seed in new long[] { 1, 2, 3 })
                {
                    var config = TestSupport.TinyConfig($"connection.name={scheme}", $"train.lr={lr}", $"train.seed={seed}");
                    var (val, test) = losses(scheme, lr, seed);
                    store.BeginRun(config, Env);
                    store.EndRun(config.RunId, new TrainResult(RunStatus.Done, 60, new EvalMetrics(60, val - 0.1, val, test), 1000, 1, 10, 0), 1000, 1 << 20);
                    plan.Add(config);
                }
        SweepFolder.WritePlan(new SweepPlan([], plan, ["train.lr"]), dir);
        return dir;
    }

    static IReadOnlyList<ArmTuning> Select(string dir)
    {
        using var store = ResultsStore.OpenExisting(dir);
        return Tuning.Select(StudyData.Load(store, SweepFolder.TunedKeys(dir)));
    }

    [Fact]
    public void Each_arm_gets_its_value_by_mean_validation_loss_and_edges_are_named()
    {
        var arms = Select(PlantedFolder(Planted));
        var pre = arms.Single(a => a.Group == "pre-norm");
        var none = arms.Single(a => a.Group == "none");
        Assert.Equal(["lr=0.001", "lr=0.003", "lr=0.01"], pre.Values.Select(v => v.Value)); // numeric order
        Assert.Equal("lr=0.001", pre.Best);
        Assert.Equal("lr=0.01", none.Best);
        Assert.Equal(["lr=0.001 is the lowest tried"], pre.Edges);
        Assert.Equal(["lr=0.01 is the highest tried"], none.Edges);
        Assert.Equal(2.004, pre.Chosen!.Val.Mean, 1e-9);
        Assert.Equal(2.804, pre.Chosen.Test.Mean, 1e-9);
    }

    [Fact]
    public void Selection_never_reads_the_test_split_and_the_report_reads_only_test()
    {
        string planted = PlantedFolder(Planted);
        // The same validation losses with test losses scrambled: the choice must not move.
        string scrambled = PlantedFolder((s, lr, seed) => (Planted(s, lr, seed).Val, 9 - Planted(s, lr, seed).Test * lr * 100));
        Assert.Equal(Select(planted).Select(a => a.Best), Select(scrambled).Select(a => a.Best));

        var output = ReportWriter.Write(planted, "pre-norm");
        var none = output.Scorecard.Single(r => r.Group == "none");
        // Compared at their own best: none at lr 0.01 (test 3.10 + noise) against pre-norm at 1e-3 (test 2.80 + noise).
        Assert.Equal(3.104 - 2.804, none.Difference!.Difference, 1e-9);
        Assert.StartsWith("worse: final test loss +0.300 nats above pre-norm", none.Verdict);
        Assert.Contains("each at its own best: at lr=0.01 by validation (lr=0.01 is the highest tried: the optimum may lie outside the grid), pre-norm at lr=0.001 by validation", none.Verdict);
        string csv = File.ReadAllText(Path.Combine(planted, "tuning.csv"));
        Assert.StartsWith("group,depth,value,runs,diverged,val_loss_mean", csv);
        Assert.Equal(7, csv.Trim().Split('\n').Length); // header + 2 schemes x 3 values
    }

    [Fact]
    public void A_diverged_seed_keeps_a_value_from_being_chosen()
    {
        string dir = PlantedFolder(Planted);
        using (var store = ResultsStore.Open(dir))
        {
            var config = TestSupport.TinyConfig("connection.name=pre-norm", "train.lr=0.001", "train.seed=2");
            store.BeginRun(config, Env);
            store.EndRun(config.RunId, new TrainResult(RunStatus.Diverged, 10, null, 1000, 1, 10, 0, "non-finite loss at step 10"), 1000, 1 << 20);
        }
        var pre = Select(dir).Single(a => a.Group == "pre-norm");
        Assert.Equal("lr=0.003", pre.Best);
        Assert.Equal(1, pre.Values[0].Diverged);
    }

    [Theory]
    [InlineData("[tune]\n\"train.lrr\" = [1e-3, 3e-3]\n", "unknown tune key 'train.lrr' (did you mean 'train.lr'?)")]
    [InlineData("[tune]\n\"train.lr\" = [1e-3]\n", "tune key 'train.lr' needs at least 2 values")]
    [InlineData("[tune]\nlr = [1e-3, 3e-3]\n", "tune key 'lr' needs its section in quotes")]
    [InlineData("[sweep]\n\"train.lr\" = [1e-3]\n[tune]\n\"train.lr\" = [1e-3, 3e-3]\n", "'train.lr' is both a [sweep] and a [tune] key")]
    [InlineData("[tune]\n\"train.seed\" = [1, 2]\n", "'train.seed' defines the arms compared")]
    public void Tune_section_mistakes_are_one_line_errors(string toml, string expected)
    {
        string path = Path.Combine(TestSupport.TempDir(), "tune.toml");
        File.WriteAllText(path, toml);
        var ex = Assert.Throws<ConfigException>(() => SweepGrid.Expand(ConfigValues.FromTomlFile(path)));
        Assert.Contains(expected, ex.Message);
        Assert.StartsWith(path + ":", ex.Message);
        Assert.DoesNotContain('\n', ex.Message);
    }

    [Fact]
    public void Tune_axes_multiply_the_grid_and_are_recorded_for_reports()
    {
        string dir = TestSupport.TempDir();
        string path = Path.Combine(dir, "tune.toml");
        File.WriteAllText(path, "[sweep]\n\"connection.name\" = [\"pre-norm\", \"none\"]\n\"train.seed\" = [1, 2]\n[tune]\n\"train.lr\" = [3e-4, 1e-3, 3e-3]\n");
        var plan = SweepGrid.Expand(ConfigValues.FromTomlFile(path));
        Assert.Equal(12, plan.Runs.Count);
        Assert.Equal(["train.lr"], plan.TunedKeys);
        Assert.Equal("connection.name (2) x train.seed (2) x train.lr (3, tuned)", SweepGrid.Describe(plan.Axes, plan.TunedKeys));
        SweepFolder.WritePlan(plan, dir);
        Assert.Equal(["train.lr"], SweepFolder.TunedKeys(dir));
    }
}
