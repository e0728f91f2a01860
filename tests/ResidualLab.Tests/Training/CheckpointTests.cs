using ResidualLab.Training;

namespace ResidualLab.Tests.Training;

/// <summary>
/// Checkpoints carry their length and a SHA-256; a run keeps the newest few; resuming uses the newest
/// that verifies, says which ones it skipped and why, and refuses when none verifies.
/// </summary>
public class CheckpointTests
{
    sealed class Recorder(Action<StepMetrics>? onStep = null) : ITrainingObserver
    {
        public List<double> Losses { get; } = [];

        public void OnStep(StepMetrics step)
        {
            Losses.Add(step.Loss);
            onStep?.Invoke(step);
        }
    }

    // Dropout draws from libtorch's generator: a resume is bit-identical only if the checkpoint restores it.
    static readonly ResidualLab.Config.RunConfig Config = TestSupport.TinyConfig("train.max_iters=24", "model.dropout=0.1", "train.eval_interval=8");

    /// <summary>Trains until step 18 is done, as a kill after it would leave the run: checkpoints of steps 15 and 10 (two kept).</summary>
    static string StoppedRun(int keep = 2)
    {
        string folder = TestSupport.TempDir();
        using var cancel = new CancellationTokenSource();
        var (task, trainer) = TestSupport.GptTrainer(Config, TestSupport.TinyCorpus(Config.Gpt.Shape.BlockSize));
        using (task) trainer.Run(new Recorder(s => { if (s.Step == 18) cancel.Cancel(); }), cancel.Token, new CheckpointPolicy(folder, 5, keep));
        return folder;
    }

    static List<double> StraightLosses()
    {
        var (task, trainer) = TestSupport.GptTrainer(Config, TestSupport.TinyCorpus(Config.Gpt.Shape.BlockSize));
        var recorder = new Recorder();
        using (task) trainer.Run(recorder);
        return recorder.Losses;
    }

    public static TheoryData<string, Func<byte[], byte[]>, string> Damages() => new()
    {
        { "truncated", bytes => bytes[..(bytes.Length / 2)], "is truncated (" },
        { "random bytes", bytes => { var noise = new byte[bytes.Length]; new Random(5).NextBytes(noise); return noise; }, "is not a ResidualLab checkpoint" },
        { "one flipped byte", bytes => { var copy = (byte[])bytes.Clone(); copy[copy.Length / 2] ^= 0x10; return copy; }, "does not match its SHA-256" },
    };

    [Theory]
    [MemberData(nameof(Damages))]
    public void A_damaged_newest_checkpoint_is_skipped_and_the_one_before_resumes_bit_identical(string damage, Func<byte[], byte[]> harm, string reason)
    {
        string folder = StoppedRun();
        Assert.Equal([15, 10], TrainingCheckpoint.List(folder).Select(c => c.Step));
        string newest = TrainingCheckpoint.PathFor(folder, 15);
        File.WriteAllBytes(newest, harm(File.ReadAllBytes(newest)));

        var notes = new List<string>();
        var from = TrainingCheckpoint.Latest(folder, Config.RunId, notes.Add);

        Assert.Equal(10, from?.Step);
        string note = Assert.Single(notes);
        Assert.StartsWith("checkpoint-00000015.bin " + reason, note);
        Assert.EndsWith(": skipped, resuming from the older checkpoint-00000010.bin", note);
        var (task, trainer) = TestSupport.GptTrainer(Config, TestSupport.TinyCorpus(Config.Gpt.Shape.BlockSize));
        var resumed = new Recorder();
        using (task) Assert.Equal(RunStatus.Done, trainer.Run(resumed, default, new CheckpointPolicy(folder, 5, ResumeFrom: from)).Status);
        Assert.True(StraightLosses().Skip(10).SequenceEqual(resumed.Losses), $"{damage}: the resumed losses differ from the uninterrupted run's");
    }

    [Fact]
    public void A_checkpoint_that_verifies_resumes_without_a_note()
    {
        var notes = new List<string>();
        Assert.Equal(15, TrainingCheckpoint.Latest(StoppedRun(), Config.RunId, notes.Add)?.Step);
        Assert.Empty(notes);
    }

    [Fact]
    public void No_checkpoint_that_verifies_is_refused_with_each_reason_and_what_to_do()
    {
        string folder = StoppedRun();
        File.WriteAllBytes(TrainingCheckpoint.PathFor(folder, 15), [1, 2, 3]);
        var older = File.ReadAllBytes(TrainingCheckpoint.PathFor(folder, 10));
        File.WriteAllBytes(TrainingCheckpoint.PathFor(folder, 10), older[..^1]);

        var error = Assert.Throws<ConfigException>(() => TrainingCheckpoint.Latest(folder, Config.RunId));

        Assert.Contains($"run {Config.RunId} cannot resume: none of its 2 checkpoint(s) in {folder} verifies", error.Message);
        Assert.Contains("checkpoint-00000015.bin is not a ResidualLab checkpoint", error.Message);
        Assert.Contains($"checkpoint-00000010.bin is truncated ({older.Length - 1:N0} of {older.Length:N0} bytes)", error.Message);
        Assert.Contains("delete them", error.Message);
    }

    [Fact]
    public void A_checkpoint_of_another_run_does_not_verify()
    {
        var other = TestSupport.TinyConfig("train.max_iters=24", "model.dropout=0.1", "train.eval_interval=8", "train.seed=8");
        var error = Assert.Throws<ConfigException>(() => TrainingCheckpoint.Latest(StoppedRun(keep: 1), other.RunId));
        Assert.Contains($"checkpoint-00000015.bin belongs to run {Config.RunId}", error.Message);
    }

    [Fact]
    public void A_run_keeps_its_newest_checkpoints_and_ignores_and_clears_what_a_kill_left_mid_write()
    {
        string folder = StoppedRun(keep: 3);
        Assert.Equal([15, 10, 5], TrainingCheckpoint.List(folder).Select(c => c.Step));

        // A kill while the checkpoint of step 20 was written leaves its temporary file, never checkpoint-00000020.bin.
        string partial = TrainingCheckpoint.PathFor(folder, 20) + ".tmp";
        File.WriteAllBytes(partial, [1, 2, 3]);
        var from = TrainingCheckpoint.Latest(folder, Config.RunId);
        Assert.Equal(15, from?.Step);

        var (task, trainer) = TestSupport.GptTrainer(Config, TestSupport.TinyCorpus(Config.Gpt.Shape.BlockSize));
        using var cancel = new CancellationTokenSource();
        using (task) trainer.Run(new Recorder(s => { if (s.Step == 20) cancel.Cancel(); }), cancel.Token, new CheckpointPolicy(folder, 5, 2, from));

        Assert.Equal([20, 15], TrainingCheckpoint.List(folder).Select(c => c.Step));
        Assert.False(File.Exists(partial));
        TrainingCheckpoint.DeleteAll(folder);
        Assert.Empty(Directory.GetFiles(folder));
    }
}
