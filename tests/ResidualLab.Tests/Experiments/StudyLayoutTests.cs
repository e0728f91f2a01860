using ResidualLab.Cli.Commands;
using ResidualLab.Config;
using ResidualLab.Experiments;
using ResidualLab.Processes;

namespace ResidualLab.Tests.Experiments;

public class StudyLayoutTests
{
    [Theory]
    [InlineData(1, "1x1")]
    [InlineData(2, "1x2 2x1")]
    [InlineData(6, "1x6 2x3 3x2 6x1")]
    public void The_candidates_are_every_way_to_fill_the_cores(int cores, string expected) =>
        Assert.Equal(expected, string.Join(' ', StudyLayout.Candidates(cores).Select(l => $"{l.Parallel}x{l.Threads}")));

    [Theory]
    [InlineData(90, "cpu", 2, 2, 1)]   // a preset's grid on two cores: one run per core
    [InlineData(3, "cpu", 8, 3, 2)]    // fewer runs than cores: the cores shared out as threads
    [InlineData(1, "cpu", 8, 1, 0)]    // one run: libtorch's own thread count
    [InlineData(90, "cuda", 16, 1, 0)] // runs would share the GPU
    public void The_automatic_layout_runs_one_per_core_on_the_cpu(int runs, string device, int cores, int parallel, int threads) =>
        Assert.Equal(new StudyLayout(parallel, threads), StudyLayout.Auto(runs, device, cores));

    [Fact]
    public void The_sample_is_spread_through_the_grid()
    {
        var runs = Enumerable.Range(0, 90).Select(seed => TestSupport.TinyConfig($"train.seed={seed + 1}")).ToList();
        var sample = StudyLayoutBench.Sample(runs, 4);
        Assert.Equal(new[] { 1L, 23, 46, 68 }, sample.Select(r => r.Train.Seed));
        Assert.Same(runs, StudyLayoutBench.Sample(runs, 200));
    }

    [Fact]
    public void The_sweep_default_sets_each_runs_threads_to_its_share_of_the_cores()
    {
        string dir = TestSupport.TempDir();
        var values = ConfigValues.FromTomlFile(TinySweep.WriteConfig(dir, "\"train.seed\" = [1, 2, 3, 4]"));
        values.Set("train.threads", 0L, "test");
        var layout = StudyLayoutOption.Resolve(0, values);
        int cores = Environment.ProcessorCount;
        Assert.Equal(Math.Min(4, cores), layout.Parallel);
        Assert.All(SweepGrid.Expand(values).Runs, r => Assert.Equal(cores > 1 ? Math.Max(1, cores / layout.Parallel) : 0, r.Threads));
    }

    [Fact]
    public void Each_layout_trains_the_same_runs_into_its_own_folder()
    {
        string dir = TestSupport.TempDir();
        var plan = TinySweep.Plan(TinySweep.WriteConfig(dir, "\"train.seed\" = [1, 2]", maxIters: 10));
        var reslab = ReslabCommand.Dll(Path.Combine(AppContext.BaseDirectory, "reslab.dll"));
        var timings = new[] { new StudyLayout(1, 1), new StudyLayout(2, 1) }
            .Select(layout => StudyLayoutBench.Time(plan, plan.Runs, layout, Path.Combine(dir, $"p{layout.Parallel}"), _ => { }, reslab))
            .ToList();
        Assert.All(timings, t =>
        {
            Assert.Equal(2, t.Runs);
            Assert.Equal(0, t.Failed);
            Assert.True(t.RunsPerHour > 0 && double.IsFinite(t.RunsPerHour));
        });
        foreach (var p in new[] { 1, 2 })
            Assert.All(plan.Runs, r => Assert.True(File.Exists(Path.Combine(dir, $"p{p}", "runs", r.RunId, "result.json")), $"p{p}: {r.RunId}"));
        string table = StudyLayoutBench.Markdown(timings);
        Assert.Single(table.Split('\n'), line => line.Contains("(best)"));
    }
}
