using ResidualLab.Reports;
using ResidualLab.Results.Store;

namespace ResidualLab.Tests.Reports;

/// <summary>
/// The necessity study's verdict per depth on synthetic studies: the residual against its naive removal and shortcut-free
/// arms, each at its own learning rate, at a short and a 5x longer budget, with validation curves for the steps to match.
/// </summary>
public class NecessityTableTests
{
    const double Unigram = 3.10;
    const int Short = 100, Long = 500;
    static int _ids;

    /// <summary>Three seeds of one arm at one learning rate: validation curve <paramref name="curve"/>(step) + 0.01 seed, evaluated
    /// every short budget / 5 steps; final validation and test loss the curve's end.</summary>
    static IEnumerable<RunData> Arm(string scheme, int depth, int budget, double lr, Func<int, double> curve) =>
        Enumerable.Range(1, 3).Select(seed =>
        {
            string config = $"train.max_iters={budget}\ntrain.lr={lr}\n";
            string setting = $"max_iters={budget}";
            var evals = Enumerable.Range(1, budget / (Short / 5)).Select(i => i * (Short / 5))
                .Select(step => new EvalRow(step, curve(step) + 0.01 * seed, curve(step) + 0.01 * seed, curve(step) + 0.01 * seed)).ToList();
            double final = evals[^1].ValLoss;
            return new RunData(new RunRecord($"n{Interlocked.Increment(ref _ids)}", $"{scheme} L{depth} s{seed}", "gpt", scheme, depth, seed, config,
                    RunState.Done, null, DateTimeOffset.UnixEpoch, DateTimeOffset.UnixEpoch, "host", 1, budget, 1000, 10, 1000, 1 << 20,
                    final, final)
            { TestLoss = final },
                $"{scheme} {setting}", setting, [], evals, [], $"lr={lr}");
        });

    static StudyData Study(IEnumerable<RunData> runs)
    {
        var list = runs.ToList();
        return new StudyData(list, list.Select(r => r.Group).Distinct().ToList(), list.Select(r => r.Depth).Distinct().Order().ToList(), 0, []);
    }

    /// <summary>Every arm at both budgets and three learning rates; the best rate (1e-3) follows <paramref name="curve"/>, the others 0.3 worse.</summary>
    static IEnumerable<RunData> Grid(int depth, IReadOnlyDictionary<string, Func<int, int, double>> curves) =>
        from arm in curves
        from budget in new[] { Short, Long }
        from lr in new[] { 3e-4, 1e-3, 3e-3 }
        from run in Arm(arm.Key, depth, budget, lr, step => arm.Value(budget, step) + (lr == 1e-3 ? 0 : 0.3))
        select run;

    /// <summary>A loss falling linearly from 3.1 to <paramref name="end"/> over the run's own budget.</summary>
    static Func<int, int, double> Linear(double end) => (budget, step) => 3.1 - (3.1 - end) * step / budget;

    static Func<int, int, double> Flat(double level) => (_, _) => level;

    /// <summary>Linear to <paramref name="shortEnd"/> over the short budget's run and to <paramref name="longEnd"/> over the long one's.</summary>
    static Func<int, int, double> Linear(double shortEnd, double longEnd) =>
        (budget, step) => Linear(budget == Short ? shortEnd : longEnd)(budget, step);

    [Fact]
    public void Without_any_shortcut_free_arm_near_the_residual_the_residual_is_necessary()
    {
        var arms = NecessityTable.Arms(Study(Grid(6, new Dictionary<string, Func<int, int, double>>
        {
            ["pre-norm"] = Linear(2.2),
            ["none"] = Flat(3.12),
            ["e-spa"] = Linear(2.8),
            ["sas"] = Linear(2.1), // keeps a skip: better than the residual, but not counted
        })), Unigram);
        Assert.All(arms, a => Assert.Equal("lr=0.001", a.Tuning.Best));
        Assert.True(arms.Single(a => a.Scheme == "none" && a.Budget == Long).Plateau);
        var espa = arms.Single(a => a.Scheme == "e-spa" && a.Budget == Short);
        Assert.False(espa.Match!.Reached); // 2.8 at best: never reaches the residual's 2.2 + 0.02
        var line = Assert.Single(NecessityTable.Lines(arms, Unigram));
        Assert.StartsWith("depth 6: necessary.", line);
        Assert.Contains("Naive removal none - residual", line);
        Assert.Contains("(unigram plateau)", line);
        Assert.Contains("Apart: sas - residual -0.100", line);
        Assert.Contains("not shortcut-free", line);
        Assert.Contains("No chosen learning rate at an edge of the grid", line);
    }

    [Fact]
    public void A_shortcut_free_arm_within_the_residuals_interval_at_the_short_budget_replaces_it()
    {
        var arms = NecessityTable.Arms(Study(Grid(12, new Dictionary<string, Func<int, int, double>>
        {
            ["pre-norm"] = Linear(2.2),
            ["none"] = Flat(3.12),
            ["e-spa"] = Linear(2.2),
            ["u-spa"] = Linear(2.6),
        })), Unigram);
        var espa = arms.Single(a => a.Scheme == "e-spa" && a.Budget == Short);
        Assert.True(espa.WithinResidual);
        Assert.Equal(0, espa.VersusResidual!.Difference, 12);
        Assert.StartsWith("depth 12: replaceable by e-spa.", Assert.Single(NecessityTable.Lines(arms, Unigram)));
    }

    [Fact]
    public void An_arm_level_at_the_short_budget_but_worse_at_the_long_one_is_judged_by_the_steps_it_needs()
    {
        // E-SPA ends the short budget level with the residual (2.2), but the residual goes on to 1.5 at the long budget and
        // E-SPA only to 2.0: not a replacement at equal steps. Its long run reaches the residual's short-budget loss at step
        // (3.1 - 2.22 + 0.01 seed) / 1.1 x 500.
        var arms = NecessityTable.Arms(Study(Grid(6, new Dictionary<string, Func<int, int, double>>
        {
            ["pre-norm"] = Linear(2.2, 1.5),
            ["none"] = Flat(3.12),
            ["e-spa"] = Linear(2.2, 2.0),
        })), Unigram);
        Assert.True(arms.Single(a => a.Scheme == "e-spa" && a.Budget == Short).WithinResidual);
        Assert.False(arms.Single(a => a.Scheme == "e-spa" && a.Budget == Long).WithinResidual);
        var line = Assert.Single(NecessityTable.Lines(arms, Unigram));
        Assert.Matches(@"^depth 6: replaceable at [0-9.]+x the steps by e-spa\. ", line);
    }

    [Fact]
    public void An_arm_that_needs_more_steps_is_replaceable_at_that_many_times_the_steps()
    {
        // The residual ends the short budget at 2.2 (+ 0.01 seed: mean 2.22). E-SPA is worse at both budgets (2.6 after 100
        // steps), but on its long run it falls linearly from 3.1 to 2.0 over 500 steps, so it reaches 2.22 at step
        // (3.1 - 2.22 + 0.01 seed) / 1.1 x 500.
        var arms = NecessityTable.Arms(Study(Grid(6, new Dictionary<string, Func<int, int, double>>
        {
            ["pre-norm"] = Linear(2.2, 1.5),
            ["none"] = Flat(3.12),
            ["e-spa"] = Linear(2.6, 2.0),
        })), Unigram);
        var match = arms.Single(a => a.Scheme == "e-spa" && a.Budget == Short).Match!;
        Assert.Equal(2.22, match.Target, 12);
        Assert.True(match.Reached);
        for (int seed = 1; seed <= 3; seed++)
            Assert.Equal((3.1 - 2.22 + 0.01 * seed) / 1.1 * Long, match.Steps[seed - 1]!.Value, 6);
        double k = Enumerable.Range(1, 3).Average(seed => (3.1 - 2.22 + 0.01 * seed) / 1.1 * Long) / Short;
        var line = Assert.Single(NecessityTable.Lines(arms, Unigram));
        Assert.StartsWith($"depth 6: replaceable at {k:0.0}x the steps by e-spa.", line);
        Assert.False(arms.Single(a => a.Scheme == "none" && a.Budget == Short).Match!.Reached);
    }

    [Fact]
    public void The_crossing_is_linear_between_evaluations()
    {
        EvalRow[] curve = [new(30, 3.0, 3.0), new(60, 3.0, 2.5), new(90, 3.0, 2.0)];
        Assert.Equal(75, NecessityTable.Crossing(curve, 2.25));
        Assert.Equal(30, NecessityTable.Crossing(curve, 3.2));   // already there at the first evaluation
        Assert.Null(NecessityTable.Crossing(curve, 1.9));
    }

    [Fact]
    public void A_learning_rate_at_the_edge_of_the_grid_is_named()
    {
        var runs = Grid(6, new Dictionary<string, Func<int, int, double>> { ["pre-norm"] = Linear(2.2), ["none"] = Flat(3.12) })
            .Concat(from budget in new[] { Short, Long }
                    from lr in new[] { 3e-4, 1e-3, 3e-3 }
                    from run in Arm("u-spa", 6, budget, lr, step => Linear(2.4)(budget, step) - lr * 10) // best at the highest rate
                    select run);
        var arms = NecessityTable.Arms(Study(runs), Unigram);
        Assert.Equal("0.003 (edge)", arms.Single(a => a.Scheme == "u-spa" && a.Budget == Short).Lr);
        Assert.Contains("Learning rate at an edge of the grid (the optimum may lie outside it): u-spa at 100 steps (lr=0.003 is the highest tried)",
            Assert.Single(NecessityTable.Lines(arms, Unigram)));
        Assert.Contains("| 6 | 100 | u-spa | shortcut-free | 0.003 (edge) |", NecessityTable.Markdown(arms));
    }
}
