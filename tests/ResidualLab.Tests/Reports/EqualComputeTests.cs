using ResidualLab.Reports;
using ResidualLab.Results.Store;
using ResidualLab.Training;

namespace ResidualLab.Tests.Reports;

public class EqualComputeTests
{
    static int _ids;

    static readonly int[] EvalSteps = [20, 40, 60, 80, 100];

    /// <summary>A done run of 100 steps of <paramref name="stepMs"/> each, evaluated every 20 steps.</summary>
    static RunData Run(string scheme, long seed, double flopsPerStep, double stepMs, double[] valLosses, double testLoss)
    {
        var record = new RunRecord($"e{Interlocked.Increment(ref _ids)}", $"{scheme} L2 s{seed}", "gpt", scheme, 2, seed, "", RunState.Done, null,
            DateTimeOffset.UnixEpoch, DateTimeOffset.UnixEpoch, "host", 1, 100, 1000, stepMs, 1000, 1 << 20, valLosses[^1], valLosses[^1])
        { TestLoss = testLoss };
        var steps = Enumerable.Range(0, 100).Select(s => new StepRow(s, 3, 1e-3, 1, stepMs, 1000)).ToList();
        var evals = EvalSteps.Select((s, i) => new EvalRow(s, valLosses[i], valLosses[i], valLosses[i])).ToList();
        return new RunData(record, scheme, "", steps, evals, [], Facts: new Dictionary<string, double> { [RunFact.FlopsPerStep] = flopsPerStep });
    }

    static StudyData Study(params RunData[] runs) =>
        new(runs, runs.Select(r => r.Group).Distinct().ToList(), [2], 0, []);

    // The baseline falls linearly to 2.5 at its last evaluation; the other arm falls faster early. Three seeds
    // each, offset by 0, 0.01 and 0.02 alike on both sides.
    static readonly double[] BaselineCurve = [2.9, 2.8, 2.7, 2.6, 2.5];
    static readonly double[] ArmCurve = [2.8, 2.4, 2.2, 2.1, 2.05];

    static IEnumerable<RunData> Seeds(string scheme, double flopsPerStep, double stepMs, double[] curve) =>
        Enumerable.Range(0, 3).Select(i => Run(scheme, i + 1, flopsPerStep, stepMs, curve.Select(l => l + 0.01 * i).ToArray(), 2.0 + 0.01 * i));

    [Fact]
    public void At_equal_flops_the_costlier_arm_is_read_where_its_flops_equal_the_baselines_end()
    {
        // pre-norm: 1e9 FLOPs per step, 100 steps: 1e11 in all. mhc: 2e9 per step reaches 1e11 at step 50,
        // halfway between its evaluations at 40 (2.4) and 60 (2.2): 2.3. Baseline at its end: 2.5.
        var data = Study([.. Seeds("pre-norm", 1e9, 10, BaselineCurve), .. Seeds("mhc", 2e9, 10, ArmCurve)]);
        var row = Scorecard.Build(data, "pre-norm").Single(r => r.Group == "mhc");
        Assert.Equal(2.0, row.FlopsRatio, 1e-12);
        var e = row.EqualFlops!;
        Assert.Equal(1e11, e.Budget, 1e-3);
        Assert.Equal(2.31, e.Loss.Mean, 1e-9);
        Assert.Equal(2.51, e.BaselineLoss.Mean, 1e-9);
        Assert.Equal(-0.20, e.Difference!.Difference, 1e-9);
        Assert.True(e.Difference.Significant());
        Assert.Contains("at equal training FLOPs (2.00x per step; validation loss at 1.00e+11 FLOPs: -0.200 (95% CI", row.Verdict);
        Assert.Contains("), better)", row.Verdict);
        Assert.Null(Scorecard.Build(data, "pre-norm").Single(r => r.Group == "pre-norm").EqualFlops);
    }

    [Fact]
    public void At_equal_wall_clock_the_slower_arm_is_read_at_the_baselines_training_seconds()
    {
        // pre-norm: 10 ms steps, 1.0 s of training at its last evaluation. mhc: 30 ms steps, evaluated after
        // 0.6, 1.2, ... s; at 1.0 s it is two thirds of the way from 2.8 to 2.4: 2.8 - 0.4 x 2/3.
        var data = Study([.. Seeds("pre-norm", 1e9, 10, BaselineCurve), .. Seeds("mhc", 1e9, 30, ArmCurve)]);
        var e = Scorecard.Build(data, "pre-norm").Single(r => r.Group == "mhc").EqualTime!;
        Assert.Equal(1.0, e.Budget, 1e-9);
        Assert.Equal(2.8 - 0.4 * 2 / 3 + 0.01, e.Loss.Mean, 1e-9);
        Assert.Equal(2.51, e.BaselineLoss.Mean, 1e-9);
        Assert.Equal(0.4 / 3 - 0.4 + 0.3, e.Difference!.Difference, 1e-9); // 2.5333 - 2.5
        Assert.True(e.Difference.Significant());
    }

    [Fact]
    public void Curves_read_validation_loss_and_nothing_is_read_outside_them()
    {
        var run = Run("x", 1, 5, 10, [2.9, 2.8, 2.7, 2.6, 2.5], 1.0);
        var flops = EqualCompute.FlopsCurve(run);
        Assert.Equal([100.0, 200, 300, 400, 500], flops.Select(p => p.X));
        Assert.Equal(2.75, EqualCompute.At(flops, 250), 1e-12);
        Assert.True(double.IsNaN(EqualCompute.At(flops, 50)), "before the first evaluation");
        Assert.True(double.IsNaN(EqualCompute.At(flops, 600)), "after the last");
        // Step times before each evaluation: steps 0..19 of 10 ms = 0.2 s at the first.
        Assert.Equal([0.2, 0.4, 0.6, 0.8, 1.0], EqualCompute.TimeCurve(run).Select(p => Math.Round(p.X, 9)));
        Assert.Empty(EqualCompute.FlopsCurve(run with { Facts = null })); // no recorded count: no FLOPs comparison
    }

    [Fact]
    public void One_seed_a_side_gives_the_means_without_a_test()
    {
        var data = Study(Run("pre-norm", 1, 1e9, 10, BaselineCurve, 2.0), Run("mhc", 1, 2e9, 10, ArmCurve, 2.0));
        var row = Scorecard.Build(data, "pre-norm").Single(r => r.Group == "mhc");
        Assert.Null(row.EqualFlops!.Difference);
        Assert.Contains("validation loss at 1.00e+11 FLOPs: 2.300 vs 2.500, 1 and 1 seeds, too few for a test", row.Verdict);
    }
}
