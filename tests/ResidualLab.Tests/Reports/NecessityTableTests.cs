using ResidualLab.Reports;
using ResidualLab.Results.Store;

namespace ResidualLab.Tests.Reports;

/// <summary>The necessity study's verdicts and per-depth lines on synthetic studies (with/without, inits, budgets, tuned learning rates).</summary>
public class NecessityTableTests
{
    const double Unigram = 3.10;
    static int _ids;

    /// <summary>Three seeds of one arm at one learning rate: final val and test loss = loss + 0.01 seed.</summary>
    static IEnumerable<RunData> Arm(string scheme, int depth, string init, int budget, double lr, double loss) =>
        Enumerable.Range(1, 3).Select(seed =>
        {
            string config = $"model.init=\"{init}\"\ntrain.max_iters={budget}\ntrain.lr={lr}\n";
            string setting = $"max_iters={budget} init={init}";
            return new RunData(new RunRecord($"n{Interlocked.Increment(ref _ids)}", $"{scheme} L{depth} s{seed}", "gpt", scheme, depth, seed, config,
                    RunState.Done, null, DateTimeOffset.UnixEpoch, DateTimeOffset.UnixEpoch, "host", 1, budget, 1000, 10, 1000, 1 << 20,
                    loss + 0.01 * seed, loss + 0.01 * seed) { TestLoss = loss + 0.01 * seed },
                $"{scheme} {setting}", setting, [], [], [], $"lr={lr}");
        });

    static StudyData Study(IEnumerable<RunData> runs)
    {
        var list = runs.ToList();
        return new StudyData(list, list.Select(r => r.Group).Distinct().ToList(), list.Select(r => r.Depth).Distinct().Order().ToList(), 0, []);
    }

    /// <summary>A with/without pair at every init, budget and learning rate, the losses given per arm and learning rate.</summary>
    static IEnumerable<RunData> Grid(int depth, Func<string, string, int, double, double> loss) =>
        from init in new[] { "gpt2", "pytorch" }
        from budget in new[] { 100, 500 }
        from scheme in new[] { "pre-norm", "none" }
        from lr in new[] { 3e-4, 1e-3, 3e-3 }
        from run in Arm(scheme, depth, init, budget, lr, loss(scheme, init, budget, lr))
        select run;

    [Fact]
    public void Without_the_residual_stuck_at_the_unigram_loss_everywhere_is_necessary_and_robust()
    {
        var cells = NecessityTable.Cells(Study(Grid(6, (s, _, _, lr) => s == "none" ? 3.12 : 2.2 + lr * 10)), Unigram);
        Assert.Equal(4, cells.Count);
        Assert.All(cells, c => Assert.Equal("necessary", c.Verdict));
        Assert.All(cells, c => Assert.Equal("lr=0.0003", c.With.Best)); // the lowest validation loss, at the edge of the grid
        Assert.All(cells, c => Assert.NotEmpty(c.With.Edges));
        var line = Assert.Single(NecessityTable.Lines(cells, Unigram));
        Assert.StartsWith("depth 6: necessary; robust to init, learning rate and budget. gpt2 100 steps: necessary, without - with +0.917 [95% CI", line);
    }

    [Fact]
    public void A_verdict_that_changes_with_the_budget_and_the_init_says_what_it_depends_on()
    {
        // The residual helps at 100 steps; at 500 steps with PyTorch's init the arm without it is better.
        var cells = NecessityTable.Cells(Study(Grid(1, (s, init, budget, lr) =>
            s == "pre-norm" ? 2.0 : budget == 100 ? 2.3 : init == "pytorch" ? 1.9 : 2.0)), Unigram);
        Assert.Equal(["helps", "no detectable difference", "helps", "hurts"], cells.Select(c => c.Verdict));
        var line = Assert.Single(NecessityTable.Lines(cells, Unigram));
        Assert.StartsWith("depth 1: mixed; depends on init and budget.", line);
        Assert.Contains("pytorch 500 steps: hurts, without - with -0.100", line);
    }

    [Fact]
    public void A_verdict_that_holds_only_at_the_tuned_rates_depends_on_the_learning_rate()
    {
        // At equal learning rates 3e-3 the arm without the residual is as good; each at its best, the residual helps.
        var cells = NecessityTable.Cells(Study(Grid(2, (s, _, _, lr) =>
            s == "pre-norm" ? (lr < 1e-3 ? 2.0 : 2.5) : (lr > 2e-3 ? 2.3 : 2.9))), Unigram);
        Assert.All(cells, c => Assert.Equal("helps", c.Verdict));
        Assert.Contains("depends on learning rate", Assert.Single(NecessityTable.Lines(cells, Unigram)));
    }
}
