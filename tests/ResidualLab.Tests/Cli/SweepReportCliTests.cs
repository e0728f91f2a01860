using ResidualLab.Tests.Experiments;

namespace ResidualLab.Tests.Cli;

[Trait(Slow.Category, Slow.Value)]
public class SweepReportCliTests
{
    [Fact]
    public void Sweep_then_report_prints_the_scorecard_and_a_second_sweep_trains_nothing()
    {
        string dir = TestSupport.TempDir();
        string config = TinySweep.WriteConfig(dir, """
            "connection.name" = ["pre-norm", "none"]
            "train.seed" = [1, 2]
            """, maxIters: 10);
        string results = Path.Combine(dir, "out");
        var first = CliProcess.Run(["sweep", config, "--out", results, "--parallel", "2"]);
        Assert.True(first.ExitCode == 0, first.StdErr + first.StdOut);
        Assert.Contains("4 runs: 0 already finished (skipped), 4 trained, 0 unfinished", first.StdOut);

        var again = CliProcess.Run(["sweep", config, "--out", results]);
        Assert.Equal(0, again.ExitCode);
        Assert.Contains("4 runs: 4 already finished (skipped), 0 trained, 0 unfinished", again.StdOut);

        var report = CliProcess.Run(["report", Path.Combine(results, "sweep"), "--tensorboard"]);
        Assert.True(report.ExitCode == 0, report.StdErr);
        Assert.Contains("Necessity scorecard", report.StdOut);
        Assert.Matches(@"none: (worse|better|no detectable difference): ", report.StdOut);
        Assert.Contains("TensorBoard: 4 event files", report.StdOut);
        Assert.True(File.Exists(Path.Combine(results, "sweep", "report.html")));
    }

    [Fact]
    public void A_misspelled_sweep_key_is_one_line_error()
    {
        string config = TinySweep.WriteConfig(TestSupport.TempDir(), "\"train.seeds\" = [1, 2]");
        var line = CliProcess.AssertOneLineError(CliProcess.Run(["sweep", config]));
        Assert.Contains($"{config}:22:", line);
        Assert.Contains("did you mean 'train.seed'", line);
    }

    [Fact]
    public void A_missing_sweep_file_suggests_a_preset()
    {
        var line = CliProcess.AssertOneLineError(CliProcess.Run(["sweep", "conections"]));
        Assert.Contains("did you mean 'connections'", line);
    }

    [Fact]
    public void Report_on_a_folder_without_results_is_one_line_error()
    {
        string empty = TestSupport.TempDir();
        var line = CliProcess.AssertOneLineError(CliProcess.Run(["report", empty]));
        Assert.Contains("has no results.db", line);
        CliProcess.AssertOneLineError(CliProcess.Run(["report", Path.Combine(empty, "missing")]));
    }

    [Fact]
    public void Report_with_an_unknown_baseline_names_the_schemes_recorded()
    {
        string folder = TinySweep.CopyOfSharedStudy();
        var line = CliProcess.AssertOneLineError(CliProcess.Run(["report", folder, "--baseline", "prenorm"]));
        Assert.Contains("did you mean 'pre-norm'", line);
    }
}
