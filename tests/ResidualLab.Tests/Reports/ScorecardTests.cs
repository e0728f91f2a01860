using ResidualLab.Reports;
using ResidualLab.Results.Store;

namespace ResidualLab.Tests.Reports;

public class ScorecardTests
{
    static int _ids;

    static RunData Run(string scheme, int depth, long seed, double? valLoss, string status = RunState.Done,
        double tokensPerSecond = 1000, long parameters = 1000, double[]? gradNorms = null) =>
        new(new RunRecord($"r{Interlocked.Increment(ref _ids)}", $"{scheme} L{depth} s{seed}", "gpt", scheme, depth, seed, "", status, null,
                DateTimeOffset.UnixEpoch, DateTimeOffset.UnixEpoch, "host", 1, 100, parameters, 10, tokensPerSecond, 1 << 20,
                valLoss, valLoss)
        { TestLoss = valLoss },
            scheme, "", (gradNorms ?? [1, 1, 1]).Select((g, i) => new StepRow(i, 3, 1e-3, g, 10, tokensPerSecond)).ToList(), [], []);

    static StudyData Study(params RunData[] runs) =>
        new(runs, runs.Select(r => r.Group).Distinct().ToList(), runs.Select(r => r.Depth).Distinct().Order().ToList(), 0, []);

    static IEnumerable<RunData> Seeds(string scheme, int depth, params double[] losses) =>
        losses.Select((l, i) => Run(scheme, depth, i + 1, l));

    static IEnumerable<RunData> Timed(string scheme, int depth, double loss, params double[] tokensPerSecond) =>
        tokensPerSecond.Select((t, i) => Run(scheme, depth, i + 1, loss + 0.01 * i, tokensPerSecond: t));

    [Fact]
    public void A_clearly_worse_scheme_that_degrades_with_depth_is_called_worse()
    {
        var data = Study([
            .. Seeds("pre-norm", 1, 2.00, 2.01, 2.02), .. Seeds("pre-norm", 4, 1.80, 1.81, 1.82),
            .. Seeds("none", 1, 2.30, 2.31, 2.32), .. Seeds("none", 4, 2.60, 2.61, 2.62)]);
        var rows = Scorecard.Build(data, "pre-norm");
        Assert.Equal(["pre-norm", "none"], rows.Select(r => r.Group));
        var none = rows[1];
        Assert.Equal(4, none.ComparedDepth);
        Assert.Equal(0.80, none.Difference!.Difference, 1e-9);
        Assert.True(none.Difference.Significant());
        Assert.Equal(0.30 / Math.Log(4), none.DepthSlope, 1e-9);
        Assert.Equal(-0.20 / Math.Log(4), none.BaselineDepthSlope, 1e-9);
        Assert.StartsWith("worse: final test loss +0.800 nats above pre-norm at 4 layers", none.Verdict);
        Assert.Contains("gains less from depth than pre-norm (+0.216 vs -0.144 per ln(depth))", none.Verdict);
        Assert.StartsWith("baseline: final test loss 1.810 at 4 layers", rows[0].Verdict);
    }

    [Fact]
    public void Noise_sized_differences_are_not_called_a_difference()
    {
        var data = Study([.. Seeds("pre-norm", 2, 2.0, 2.2, 1.9), .. Seeds("post-norm", 2, 2.05, 1.95, 2.15)]);
        var row = Scorecard.Build(data, "pre-norm")[1];
        Assert.False(row.Difference!.Significant());
        Assert.StartsWith("no detectable difference: final test loss within noise of pre-norm at 2 layers", row.Verdict);
    }

    [Fact]
    public void Divergence_single_seeds_ratios_and_spikes_are_reported()
    {
        var data = Study([
            Run("pre-norm", 2, 1, 2.0, tokensPerSecond: 1000, parameters: 1000, gradNorms: [.. Enumerable.Repeat(9.0, 5), .. Enumerable.Repeat(1.0, 20), 5, 1]),
            Run("mhc", 2, 1, null, RunState.Diverged, tokensPerSecond: 500),
            Run("mhc", 2, 2, 2.1, tokensPerSecond: 800, parameters: 1200, gradNorms: [.. Enumerable.Repeat(2.0, 30)])]);
        var rows = Scorecard.Build(data, "pre-norm");
        var mhc = rows.Single(r => r.Group == "mhc");
        Assert.Equal((1, 2, 0.5), (mhc.Diverged, mhc.Finished, mhc.DivergenceRate));
        Assert.Null(mhc.Difference); // one finished seed per side: no test
        Assert.Equal(0.8, mhc.ThroughputRatio, 1e-9); // diverged runs do not enter the ratio
        Assert.Equal(1.2, mhc.ParameterRatio, 1e-9);
        Assert.Equal(1.0, mhc.WorstGradSpike, 1e-9); // the diverged run's constant norms: 1, the finished run's: 1
        Assert.Equal(5.0, rows.Single(r => r.Group == "pre-norm").WorstGradSpike, 1e-9); // the large first steps are no spike
        Assert.True(double.IsNaN(Scorecard.GradSpike(Run("x", 1, 1, 1.0, gradNorms: [1, 50]))), "too short to judge");
        Assert.StartsWith("unstable: diverged in 1 of 2 runs (0 of 1 for pre-norm); too few finished seeds", mhc.Verdict);
        Assert.EndsWith("; 1.20x the parameters", mhc.Verdict); // one timing per side: no throughput claim
    }

    [Fact]
    public void Throughput_is_named_only_when_the_difference_is_beyond_timing_noise()
    {
        var clear = Scorecard.Build(Study([.. Timed("pre-norm", 2, 2.0, 1000, 1010, 990), .. Timed("hc", 2, 2.0, 500, 505, 495)]), "pre-norm")[1];
        Assert.Equal(0.5, clear.ThroughputRatio, 1e-9);
        Assert.Contains("0.50x the throughput (p < 0.001)", clear.Verdict);
        var noisy = Scorecard.Build(Study([.. Timed("pre-norm", 2, 2.0, 1000, 600, 1400), .. Timed("hc", 2, 2.0, 1300, 900, 1700)]), "pre-norm")[1];
        Assert.Equal(1.3, noisy.ThroughputRatio, 1e-9);
        Assert.DoesNotContain("throughput", noisy.Verdict);
    }

    [Fact]
    public void A_scheme_with_no_baseline_runs_says_so()
    {
        var data = Study([.. Seeds("pre-norm", 2, 2.0, 2.1), .. Seeds("none", 2, 2.5, 2.6)]);
        Assert.All(Scorecard.Build(data, "post-norm"), r => Assert.StartsWith("no baseline runs recorded", r.Verdict));
    }
}
