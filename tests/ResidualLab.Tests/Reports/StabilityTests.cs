using ResidualLab.Reports;
using ResidualLab.Results.Store;

namespace ResidualLab.Tests.Reports;

/// <summary>Verdicts per budget and per initialisation, and the one line that says whether they agree, on synthetic studies.</summary>
public class StabilityTests
{
    static int _ids;

    static IEnumerable<RunData> Seeds(string scheme, string setting, int depth, params double[] losses) =>
        losses.Select((loss, i) => new RunData(
            new RunRecord($"s{Interlocked.Increment(ref _ids)}", $"{scheme} L{depth} s{i + 1}", "gpt", scheme, depth, i + 1, "", RunState.Done, null,
                DateTimeOffset.UnixEpoch, DateTimeOffset.UnixEpoch, "host", 1, 100, 1000, 10, 1000, 1 << 20, loss, loss)
            { TestLoss = loss },
            setting.Length == 0 ? scheme : $"{scheme} {setting}", setting, [], [], []));

    static StudyData Study(params RunData[] runs) =>
        new(runs, runs.Select(r => r.Group).Distinct().ToList(), runs.Select(r => r.Depth).Distinct().Order().ToList(), 0, []);

    [Fact]
    public void A_verdict_that_changes_with_the_budget_says_where()
    {
        var data = Study([
            .. Seeds("pre-norm", "max_iters=600", 1, 2.00, 2.01, 2.02), .. Seeds("none", "max_iters=600", 1, 2.20, 2.21, 2.22),
            .. Seeds("pre-norm", "max_iters=3000", 1, 1.70, 1.72, 1.74), .. Seeds("none", "max_iters=3000", 1, 1.71, 1.73, 1.72)]);
        var rows = Scorecard.Build(data, "pre-norm");
        Assert.StartsWith("worse:", rows.Single(r => r.Group == "none max_iters=600").Verdict);
        Assert.StartsWith("no detectable difference:", rows.Single(r => r.Group == "none max_iters=3000").Verdict);
        Assert.Equal(["none: worse at max_iters=600, no detectable difference at max_iters=3000: the verdict depends on the budget"], Stability.Lines(rows));
    }

    [Fact]
    public void A_verdict_that_holds_at_every_budget_and_init_says_so()
    {
        var data = Study([
            .. Seeds("pre-norm", "max_iters=200 init=gpt2", 6, 2.0, 2.01, 2.02), .. Seeds("none", "max_iters=200 init=gpt2", 6, 3.1, 3.11, 3.12),
            .. Seeds("pre-norm", "max_iters=1000 init=gpt2", 6, 1.8, 1.81, 1.82), .. Seeds("none", "max_iters=1000 init=gpt2", 6, 3.1, 3.11, 3.12),
            .. Seeds("pre-norm", "max_iters=200 init=pytorch", 6, 2.1, 2.11, 2.12), .. Seeds("none", "max_iters=200 init=pytorch", 6, 3.1, 3.11, 3.12),
            .. Seeds("pre-norm", "max_iters=1000 init=pytorch", 6, 1.9, 1.91, 1.92), .. Seeds("none", "max_iters=1000 init=pytorch", 6, 3.1, 3.11, 3.12)]);
        var lines = Stability.Lines(Scorecard.Build(data, "pre-norm")).Order(StringComparer.Ordinal);
        Assert.Equal([
            "none init=gpt2: worse at every budget tried (max_iters 200, 1000)",
            "none init=pytorch: worse at every budget tried (max_iters 200, 1000)",
            "none max_iters=1000: worse at every initialisation tried (init gpt2, pytorch)",
            "none max_iters=200: worse at every initialisation tried (init gpt2, pytorch)"], lines);
    }

    [Fact]
    public void One_budget_gives_no_stability_line()
    {
        var data = Study([.. Seeds("pre-norm", "", 2, 2.0, 2.1), .. Seeds("none", "", 2, 2.5, 2.6)]);
        Assert.Empty(Stability.Lines(Scorecard.Build(data, "pre-norm")));
    }
}
