using ResidualLab.Tests.Data;
using ResidualLab.Training;

namespace ResidualLab.Tests.Cli;

/// <summary>A vision run killed with SIGKILL after a checkpoint and resumed ends as the run that was never killed.</summary>
[Trait(Slow.Category, Slow.Value)]
public class VisionResumeTests
{
    static string[] Settings(string images) =>
    [
        "--set", "model.name=mlp", "--set", "model.depth=4", "--set", "model.width=16", "--set", $"data.images={images}",
        "--set", "data.val_images=16", "--set", "data.augment=true", "--set", "train.batch_size=16", "--set", "train.lr=0.05",
        "--set", "train.max_iters=200", "--set", "train.eval_interval=50", "--set", "train.eval_batches=2",
        "--set", "train.checkpoint_interval=10", "--threads", "1",
    ];

    [Fact]
    public void Mlp_killed_with_SIGKILL_and_resumed_ends_bit_identical()
    {
        string images = IdxTests.WriteSet(trainCount: 96, testCount: 32, size: 12);
        string straight = TestSupport.TempDir(), killed = TestSupport.TempDir();

        var full = CliProcess.Run(["train", "--out", straight, .. Settings(images)]);
        Assert.True(full.ExitCode == 0, full.StdErr);
        string runId = Path.GetFileName(Directory.GetDirectories(Path.Combine(straight, "runs")).Single());
        string straightDir = Path.Combine(straight, "runs", runId);

        string runDir = Path.Combine(killed, "runs", runId);
        Assert.True(CliProcess.KillOnceWritten(["train", "--out", killed, .. Settings(images)], TrainingCheckpoint.PathFor(runDir, 10)),
            "the run finished before it could be killed; give it more steps");
        int killedAt = TrainingCheckpoint.List(runDir)[0].Step;
        Assert.InRange(killedAt, 10, 190);

        var resumed = CliProcess.Run(["resume", runId, "--results", killed]);
        Assert.True(resumed.ExitCode == 0, resumed.StdErr);
        Assert.Contains($"resuming at step {killedAt}", resumed.StdOut);

        Assert.Equal(ResumeTests.Losses(straightDir), ResumeTests.Losses(runDir));
        // Error rates, averages and per-layer gradient norms, as the store keeps them (exported in metrics.jsonl).
        static IEnumerable<string> Readings(string dir) => File.ReadLines(Path.Combine(dir, "metrics.jsonl")).Where(l => l.Contains("\"kind\":\"reading\""));
        Assert.NotEmpty(Readings(straightDir));
        Assert.Equal(Readings(straightDir), Readings(runDir));
        Assert.Equal(File.ReadAllBytes(Path.Combine(straightDir, "model.pt")), File.ReadAllBytes(Path.Combine(runDir, "model.pt")));
        Assert.Empty(Directory.GetFiles(runDir, "checkpoint*"));
    }

    [Fact]
    public void An_image_folder_without_its_idx_files_is_one_line_naming_them()
    {
        string empty = TestSupport.TempDir();
        var line = CliProcess.AssertOneLineError(CliProcess.Run(["train", "--set", "model.name=mlp", "--set", $"data.images={empty}"]));
        Assert.Contains($"image folder '{empty}' has no train-images-idx3-ubyte, train-labels-idx1-ubyte", line);
        var missing = CliProcess.AssertOneLineError(CliProcess.Run(["train", "--set", "model.name=mlp", "--set", "data.images=./no-such-folder"]));
        Assert.Contains("image folder './no-such-folder' does not exist", missing);
    }
}
