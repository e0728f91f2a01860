using System.Globalization;
using ResidualLab.Reports;
using ResidualLab.Results.Store;
using ResidualLab.Tests.Cli;
using ResidualLab.Tests.Experiments;

namespace ResidualLab.Tests.Reports;

/// <summary>
/// A results page written from a store: its provenance (commit, CPU, threads, dates) and its numbers are those the store
/// recorded for the runs, not those of the machine or the moment that writes the page.
/// </summary>
[Trait(Slow.Category, Slow.Value)]
public class ResultsPageTests
{
    static readonly Lazy<(string Folder, string Page, ReportOutput Output)> Written = new(() =>
    {
        string folder = TinySweep.CopyOfSharedStudy(); // the report writes its files into the folder it reads
        string page = Path.Combine(TestSupport.TempDir(), "results", "tiny.md");
        var output = ReportWriter.Write(folder, "pre-norm",
            page: new ResultsPageRequest(page, $"reslab report {folder} --markdown {page}", "reslab sweep sweep.toml --parallel 1"));
        return (folder, page, output);
    });

    [Fact]
    public void The_page_names_where_its_numbers_come_from_as_the_store_recorded_it()
    {
        var (folder, page, output) = Written.Value;
        Assert.Equal(page, output.ResultsPagePath);
        string text = File.ReadAllText(page);
        using var store = ResultsStore.OpenExisting(folder);
        var runs = store.Runs();
        var env = store.EnvironmentOf(runs[0].RunId)!;

        Assert.Contains("| trained by | `reslab sweep sweep.toml --parallel 1` |", text);
        Assert.Contains($"by `reslab report {folder} --markdown {page}`", text);
        Assert.Contains("| runs | 8 finished (0 diverged) |", text);
        Assert.Contains("| schemes | pre-norm, none |", text);
        Assert.Contains("| depths | 1, 2 |", text);
        Assert.Contains("| seeds | 1, 2 |", text);
        Assert.Contains($"| ResidualLab | {env.Version} at commit {env.CommitDescription} |", text);
        Assert.Contains($"| CPU | {CpuIdentity.Host.Describe()} |", text); // the tiny sweep trained on this host
        Assert.Contains("| threads per run | 1 |", text); // its config sets train.threads = 1
        string day = runs.Min(r => r.StartedAt).UtcDateTime.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture);
        Assert.Matches($@"\| dates \(UTC\) \| {day}( to \d{{4}}-\d{{2}}-\d{{2}})? \|", text);
    }

    [Fact]
    public void The_page_holds_every_group_and_depth_with_the_store_s_test_losses_and_the_scorecard_s_verdicts()
    {
        var (folder, page, output) = Written.Value;
        string text = File.ReadAllText(page);
        using var store = ResultsStore.OpenExisting(folder);
        var runs = store.Runs();
        foreach (var scheme in new[] { "pre-norm", "none" })
            foreach (int depth in new[] { 1, 2 })
            {
                double mean = runs.Where(r => r.Connection == scheme && r.Depth == depth).Average(r => r.TestLoss!.Value);
                Assert.Matches($@"\| {scheme} \| {depth} \| 2 \| 0 \| {mean.ToString("0.000", CultureInfo.InvariantCulture)} \[", text);
            }
        Assert.Contains("| pre-norm | 1 | 2 | 0 |", text);
        Assert.Matches(@"\| pre-norm \| 2 \| 2 \| 0 \| [0-9.]+ \[[0-9.]+, [0-9.]+\] \| baseline \|", text);
        foreach (var row in output.Scorecard)
            Assert.Contains($"- **{row.Group}**: {row.Verdict}", text);
    }

    [Fact]
    public void The_command_that_trained_the_runs_needs_a_page_to_go_on()
    {
        var o = CliProcess.Run(["report", TinySweep.CopyOfSharedStudy(), "--command", "reslab sweep x.toml"]);
        Assert.Contains("give --markdown FILE too", CliProcess.AssertOneLineError(o));
    }
}
