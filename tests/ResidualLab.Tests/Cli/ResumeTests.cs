using System.Text.Json;
using ResidualLab.Training;

namespace ResidualLab.Tests.Cli;

public class ResumeTests
{
    static readonly string[] Settings =
    [
        "--set", "model.n_layer=2", "--set", "model.d_model=32", "--set", "model.n_head=2", "--set", "model.block_size=16",
        "--set", "model.dropout=0.1", "--set", "train.batch_size=8", "--set", "train.max_iters=200",
        "--set", "train.eval_interval=50", "--set", "train.eval_batches=2", "--set", "train.checkpoint_interval=10",
        "--threads", "1",
    ];

    [Fact]
    public void Run_killed_with_SIGKILL_and_resumed_ends_bit_identical()
    {
        string corpus = Path.Combine(TestSupport.TempDir(), "corpus.txt");
        File.WriteAllText(corpus, TestSupport.TinyText());
        string straight = TestSupport.TempDir(), killed = TestSupport.TempDir();

        var full = CliProcess.Run(["train", "--data", corpus, "--out", straight, .. Settings]);
        Assert.True(full.ExitCode == 0, full.StdErr);
        string runId = Path.GetFileName(Directory.GetDirectories(Path.Combine(straight, "runs")).Single());

        // Start the same run, SIGKILL it once it has written a checkpoint, then resume it.
        string runDir = Path.Combine(killed, "runs", runId);
        string checkpoint = Path.Combine(runDir, "checkpoint.bin");
        Assert.True(CliProcess.KillOnceWritten(["train", "--data", corpus, "--out", killed, .. Settings], checkpoint),
            "the run finished before it could be killed; give it more steps");
        int? killedAt = TrainingCheckpoint.PeekStep(checkpoint, runId);
        Assert.NotNull(killedAt);
        Assert.InRange(killedAt!.Value, 10, 190);

        var resumed = CliProcess.Run(["resume", runId, "--results", killed]);
        Assert.True(resumed.ExitCode == 0, resumed.StdErr);
        Assert.Contains($"resuming at step {killedAt}", resumed.StdOut);

        Assert.Equal(Losses(Path.Combine(straight, "runs", runId)), Losses(runDir));
        Assert.Equal(File.ReadAllBytes(Path.Combine(straight, "runs", runId, "model.pt")), File.ReadAllBytes(Path.Combine(runDir, "model.pt")));
        Assert.False(File.Exists(checkpoint)); // a finished run keeps no checkpoint
    }

    [Fact]
    public void Resume_of_unknown_run_is_one_line_error()
    {
        var line = CliProcess.AssertOneLineError(CliProcess.Run(["resume", "abc123", "--results", TestSupport.TempDir()]));
        Assert.Contains("run 'abc123' not found", line);
    }

    /// <summary>Every step's loss and every evaluation, in order, exactly as written.</summary>
    internal static List<string> Losses(string runDir) =>
        File.ReadLines(Path.Combine(runDir, "metrics.jsonl")).Select(line =>
        {
            using var doc = JsonDocument.Parse(line);
            var e = doc.RootElement;
            return e.GetProperty("kind").GetString() == "step"
                ? $"step {e.GetProperty("step")} {e.GetProperty("loss").GetRawText()}"
                : $"eval {e.GetProperty("step")} {e.GetProperty("val_loss").GetRawText()}";
        }).ToList();
}
