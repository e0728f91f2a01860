using System.Text.Json;
using ResidualLab.Training;

namespace ResidualLab.Tests.Cli;

[Trait(Slow.Category, Slow.Value)]
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
        Assert.True(CliProcess.KillOnceWritten(["train", "--data", corpus, "--out", killed, .. Settings], TrainingCheckpoint.PathFor(runDir, 10)),
            "the run finished before it could be killed; give it more steps");
        int killedAt = TrainingCheckpoint.List(runDir)[0].Step;
        Assert.InRange(killedAt, 10, 190);

        var resumed = CliProcess.Run(["resume", runId, "--results", killed]);
        Assert.True(resumed.ExitCode == 0, resumed.StdErr);
        Assert.Contains($"resuming at step {killedAt}", resumed.StdOut);

        Assert.Equal(Losses(Path.Combine(straight, "runs", runId)), Losses(runDir));
        Assert.Equal(File.ReadAllBytes(Path.Combine(straight, "runs", runId, "model.pt")), File.ReadAllBytes(Path.Combine(runDir, "model.pt")));
        Assert.Empty(Directory.GetFiles(runDir, "checkpoint*")); // a finished run keeps no checkpoint
    }

    [Fact]
    public void A_damaged_newest_checkpoint_is_skipped_and_the_run_resumes_bit_identical_from_the_one_before()
    {
        string corpus = Path.Combine(TestSupport.TempDir(), "corpus.txt");
        File.WriteAllText(corpus, TestSupport.TinyText());
        string straight = TestSupport.TempDir(), killed = TestSupport.TempDir();
        var full = CliProcess.Run(["train", "--data", corpus, "--out", straight, .. Settings]);
        Assert.True(full.ExitCode == 0, full.StdErr);
        string runId = Path.GetFileName(Directory.GetDirectories(Path.Combine(straight, "runs")).Single());

        string runDir = Path.Combine(killed, "runs", runId);
        Assert.True(CliProcess.KillOnceWritten(["train", "--data", corpus, "--out", killed, .. Settings], TrainingCheckpoint.PathFor(runDir, 20)),
            "the run finished before it could be killed; give it more steps");
        var kept = TrainingCheckpoint.List(runDir);
        Assert.Equal(2, kept.Count); // train.keep_checkpoints = 2
        // One flipped byte in the middle of the newest: without a checksum it would load and resume a different run.
        byte[] bytes = File.ReadAllBytes(kept[0].Path);
        bytes[bytes.Length / 2] ^= 0x01;
        File.WriteAllBytes(kept[0].Path, bytes);

        var resumed = CliProcess.Run(["resume", runId, "--results", killed]);
        Assert.True(resumed.ExitCode == 0, resumed.StdErr);
        string name = Path.GetFileName(kept[0].Path), older = Path.GetFileName(kept[1].Path);
        Assert.Contains($"{name} does not match its SHA-256 (its bytes changed after it was written): skipped, resuming from the older {older}", resumed.StdOut);
        Assert.Contains($"resuming at step {kept[1].Step}", resumed.StdOut);
        Assert.Equal(Losses(Path.Combine(straight, "runs", runId)), Losses(runDir));
        Assert.Equal(File.ReadAllBytes(Path.Combine(straight, "runs", runId, "model.pt")), File.ReadAllBytes(Path.Combine(runDir, "model.pt")));
    }

    [Fact]
    public void Resume_refuses_in_one_line_when_no_checkpoint_verifies()
    {
        string corpus = Path.Combine(TestSupport.TempDir(), "corpus.txt");
        File.WriteAllText(corpus, TestSupport.TinyText());
        string results = TestSupport.TempDir();
        var train = CliProcess.Run(["train", "--data", corpus, "--out", results, .. Settings, "--set", "train.max_iters=5"]);
        Assert.True(train.ExitCode == 0, train.StdErr);
        string runDir = Directory.GetDirectories(Path.Combine(results, "runs")).Single();
        string runId = Path.GetFileName(runDir);
        File.WriteAllBytes(TrainingCheckpoint.PathFor(runDir, 4), Enumerable.Repeat((byte)0xA5, 4096).ToArray());

        var line = CliProcess.AssertOneLineError(CliProcess.Run(["resume", runId, "--results", results]));
        Assert.Contains($"run {runId} cannot resume: none of its 1 checkpoint(s) in {runDir} verifies (checkpoint-00000004.bin is not a ResidualLab checkpoint)", line);
        Assert.Contains("delete them", line);
    }

    [Fact]
    public void Resume_of_unknown_run_is_one_line_error()
    {
        var line = CliProcess.AssertOneLineError(CliProcess.Run(["resume", "abc123", "--results", TestSupport.TempDir()]));
        Assert.Contains("run 'abc123' not found", line);
    }

    /// <summary>Every step's loss and every evaluation, in order, exactly as written (readings are compared apart).</summary>
    internal static List<string> Losses(string runDir) =>
        File.ReadLines(Path.Combine(runDir, "metrics.jsonl")).Select(line =>
        {
            using var doc = JsonDocument.Parse(line);
            var e = doc.RootElement;
            return e.GetProperty("kind").GetString() switch
            {
                "step" => $"step {e.GetProperty("step")} {e.GetProperty("loss").GetRawText()}",
                "eval" => $"eval {e.GetProperty("step")} {e.GetProperty("val_loss").GetRawText()}",
                _ => null,
            };
        }).OfType<string>().ToList();
}
