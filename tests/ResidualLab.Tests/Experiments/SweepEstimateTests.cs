using ResidualLab.Config;
using ResidualLab.Data;
using ResidualLab.Experiments;

namespace ResidualLab.Tests.Experiments;

public class SweepEstimateTests
{
    [Fact]
    public void Runs_that_differ_only_in_seed_or_learning_rate_share_one_timed_model()
    {
        var a = TestSupport.TinyConfig("train.seed=1", "train.lr=1e-3");
        var b = TestSupport.TinyConfig("train.seed=2", "train.lr=3e-3", "train.min_lr=1e-4");
        var deeper = TestSupport.TinyConfig("train.seed=1", "model.n_layer=2");
        var other = TestSupport.TinyConfig("train.seed=1", "connection.name=mhc");
        Assert.NotEqual(a.RunId, b.RunId);
        Assert.Equal(SweepEstimate.ShapeKey(a), SweepEstimate.ShapeKey(b));
        Assert.NotEqual(SweepEstimate.ShapeKey(a), SweepEstimate.ShapeKey(deeper));
        Assert.NotEqual(SweepEstimate.ShapeKey(a), SweepEstimate.ShapeKey(other));
    }

    [Theory]
    [InlineData(250, 50, 5)]    // steps 50, 100, 150, 200 and the end
    [InlineData(600, 100, 6)]
    [InlineData(60, 1000, 1)]   // the end only
    [InlineData(100, 1, 100)]
    public void A_run_evaluates_every_interval_after_the_first_step_and_at_the_end(int steps, int interval, int evaluations) =>
        Assert.Equal(evaluations, SweepEstimate.Evaluations(TestSupport.TinyConfig($"train.max_iters={steps}", $"train.eval_interval={interval}").Train));

    [Theory]
    [InlineData(100, 1, 1, 2, 100)]   // one run at a time
    [InlineData(100, 2, 1, 2, 50)]    // two single-threaded runs on two cores
    [InlineData(100, 2, 2, 2, 100)]   // two runs of two threads share two cores: no gain
    [InlineData(100, 4, 1, 2, 50)]    // more runs than cores: the cores bound it
    public void Runs_side_by_side_divide_the_time_only_as_far_as_the_cores_allow(double seconds, int parallel, int threads, int cores, double wall) =>
        Assert.Equal(wall, SweepEstimate.WallSeconds(seconds, parallel, threads, cores), 9);

    [Fact]
    public void The_estimate_times_each_model_once_and_counts_every_run()
    {
        string dir = TestSupport.TempDir();
        string corpus = Path.Combine(dir, "tiny.txt");
        File.WriteAllText(corpus, TestSupport.TinyText());
        var runs = new[] { 1, 2, 3 }.SelectMany(seed => new[] { "pre-norm", "mhc" }.Select(scheme =>
            TestSupport.TinyConfig($"data.path={corpus}", $"train.seed={seed}", $"connection.name={scheme}", "train.threads=1",
                "train.max_iters=40", "train.eval_interval=10"))).ToList();
        var estimate = SweepEstimate.For(runs, parallel: 1, new DataCache(), timedSteps: 2);
        Assert.Equal(6, estimate.Runs);
        Assert.Equal(2, estimate.Shapes);
        Assert.True(estimate.Seconds > 0 && double.IsFinite(estimate.Seconds));
        Assert.Contains("for 6 runs, 1 at a time", estimate.Describe(1));
    }

    [Theory]
    [InlineData(42, "42 s")]
    [InlineData(1020, "17 min")]
    [InlineData(7500, "2 h 05 min")]
    public void Durations_read_as_seconds_minutes_or_hours(double seconds, string text) =>
        Assert.Equal(text, SweepEstimate.Duration(seconds));
}
