using ResidualLab.Config;
using ResidualLab.Data;
using ResidualLab.Experiments;
using ResidualLab.Reports;
using ResidualLab.Results.Store;

namespace ResidualLab.Tests.Experiments;

/// <summary>The necessity study's preset and its whole path: plan, train into the store, table and verdict from the store, report with stream health.</summary>
[Trait(Slow.Category, Slow.Value)]
public class NecessityStudyTests
{
    static ConfigValues Preset() => ConfigValues.FromTomlFile(Path.Combine(TestSupport.RepoRoot(), "configs", NecessityStudy.Preset + ".toml"));

    [Fact]
    public void The_preset_compares_the_residual_with_its_removal_and_the_shortcut_free_arms_at_two_budgets_on_one_grid()
    {
        var plan = SweepGrid.Expand(Preset());
        var arms = plan.Runs.Select(r => r.Connection.Name).Distinct().ToList();
        Assert.Contains(NecessityStudy.Residual, arms);
        Assert.Contains(NecessityStudy.NaiveRemoval, arms);
        Assert.Subset(arms.ToHashSet(), NecessityStudy.ShortcutFree.ToHashSet());
        Assert.Contains(arms, a => NecessityStudy.RoleOf(a) == NecessityRole.PartialShortcut); // sas, reported apart
        Assert.Equal([6, 12], plan.Runs.Select(r => r.Gpt.Shape.NLayer).Distinct().Order());
        Assert.Equal([1L, 2L, 3L], plan.Runs.Select(r => r.Train.Seed).Distinct().Order());
        Assert.Equal(["train.lr"], plan.TunedKeys);
        var budgets = plan.Runs.Select(r => r.Train.MaxIters).Distinct().Order().ToList();
        Assert.Equal(2, budgets.Count);
        Assert.Equal(NecessityStudy.LongBudgetFactor * budgets[0], budgets[1]);
        // The preset's evaluation and probe cadence is what --steps gives for its own short budget.
        var rebudgeted = Preset();
        NecessityStudy.Budgets(rebudgeted, budgets[0], "test");
        Assert.Equal(plan.Runs.Select(r => r.Canonical), SweepGrid.Expand(rebudgeted).Runs.Select(r => r.Canonical));
        Assert.All(plan.Runs, r => Assert.Equal(budgets[0] / NecessityStudy.EvaluationsPerShortBudget, r.Train.EvalInterval));
        int lrs = plan.Runs.Select(r => r.Train.Lr).Distinct().Count();
        Assert.True(lrs >= 5, $"{lrs} learning rates");
        Assert.Equal(arms.Count * 2 * 2 * 3 * lrs, plan.Runs.Count);
    }

    [Theory]
    [InlineData("none,e-spa", "--arms 'none,e-spa': the arms must include pre-norm")]
    [InlineData("pre-norm,e-sap", "unknown scheme 'e-sap' (did you mean 'e-spa'?)")]
    public void Arms_the_study_cannot_judge_are_one_line(string arms, string message) =>
        Assert.Contains(message, Assert.Throws<ConfigException>(() => NecessityStudy.Arms(arms, "--arms")).Message);

    [Fact]
    public void A_tiny_study_goes_from_the_preset_through_the_store_to_its_verdict_and_its_report()
    {
        string dir = TestSupport.TempDir();
        string corpus = Path.Combine(dir, "tiny.txt");
        File.WriteAllText(corpus, TestSupport.TinyText());
        var values = Preset();
        foreach (var (key, value) in new (string, object)[]
                 {
                     ("data.path", corpus), ("model.d_model", 16L), ("model.n_head", 2L), ("model.block_size", 16L), ("train.batch_size", 8L),
                     ("train.eval_batches", 2L), ("train.warmup_iters", 2L),
                 })
            values.Set(key, value, "test");
        NecessityStudy.Budgets(values, 5, "test");
        NecessityStudy.ReplaceAxis(values, "connection.name", NecessityStudy.Arms("pre-norm,none,e-spa,sas", "test"), "test");
        NecessityStudy.ReplaceAxis(values, "model.n_layer", NecessityStudy.Integers("2", "test", "2"), "test");
        NecessityStudy.ReplaceAxis(values, "train.seed", NecessityStudy.Integers("1,2", "test", "1,2"), "test");
        NecessityStudy.ReplaceAxis(values, "train.lr", NecessityStudy.Numbers("1e-3,3e-3", "test", "1e-3"), "test", tune: true);
        var plan = SweepGrid.Expand(values);
        Assert.Equal(4 * 2 * 2 * 2, plan.Runs.Count);

        string results = Path.Combine(dir, "necessity");
        StudyData data;
        using (var store = ResultsStore.Open(results))
        {
            // Tuned on seed 1, seed 2 at each arm's choice: 4 arms x 2 budgets x (2 rates + 1 seed).
            var outcome = TunedSweep.Run(plan, p => SweepRunner.Run(p, results, store, 1, _ => null, _ => { }), p => TunedSweep.Load(store, p),
                () => false, _ => { });
            Assert.Empty(outcome.Unfinished);
            Assert.Equal(4 * 2 * 3, outcome.Total);
            data = TunedSweep.Load(store, outcome.Plan);
        }
        double unigram = NecessityStudy.UnigramLoss(CorpusLoader.Load(plan.Runs[0].Gpt.Data, plan.Runs[0].Gpt.Shape.BlockSize));
        var arms = NecessityTable.Arms(data, unigram);
        Assert.Equal(4 * 2, arms.Count);
        Assert.All(arms, a => Assert.Equal(2, a.TestLosses.Count));
        Assert.All(arms.Where(a => a.Budget == 5), a => Assert.NotNull(a.Match));
        Assert.All(arms.Where(a => a.Scheme != NecessityStudy.Residual), a => Assert.NotNull(a.VersusResidual));
        var line = Assert.Single(NecessityTable.Lines(arms, unigram));
        Assert.Matches("^depth 2: (necessary|replaceable by e-spa|replaceable at [0-9.]+x the steps by e-spa|replaceable by e-spa at 25 steps, not at 5)\\. ", line);
        Assert.Contains("Apart: sas - residual", line);

        // Stream health at init and trained, from the probes, in the study's report.
        Assert.All(data.Runs, r => Assert.Equal([0, r.Run.Steps - 1], r.Diagnostics.Where(d => d.Name == RankCollapse.Reading).Select(d => d.Step).Distinct().Order()));
        var report = ReportWriter.Write(results, NecessityStudy.Residual);
        string html = File.ReadAllText(report.HtmlPath);
        Assert.Contains("Stream health: rank collapse", html);
        Assert.Contains("Rank collapse along depth at init (1 - token cosine)", html);
        var health = File.ReadAllLines(Path.Combine(results, "stream_health.csv"));
        Assert.Contains(health, l => l.StartsWith("e-spa", StringComparison.Ordinal));
    }
}
