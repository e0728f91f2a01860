using ResidualLab.Config;
using ResidualLab.Data;
using ResidualLab.Tests.Data;
using ResidualLab.Training;
using ResidualLab.Training.Tasks;
using static TorchSharp.torch;

namespace ResidualLab.Tests.Training;

[Trait(Slow.Category, Slow.Value)]
public class ImageClassificationTaskTests
{
    static RunConfig Config(params string[] overrides)
    {
        var v = new ConfigValues();
        foreach (var o in new[]
                 {
                     "model.name=resnet", "model.depth=8", "model.width=4", "connection.name=residual",
                     "train.batch_size=16", "train.max_iters=100", "train.lr=0.1", "train.warmup_iters=0",
                     "train.weight_decay=0", "train.grad_clip=0", "data.val_images=4", "train.eval_interval=50", "train.eval_batches=1", "train.seed=3",
                 }.Concat(overrides))
            v.Override(o);
        return RunConfig.From(v);
    }

    [Fact]
    public void A_tiny_resnet_overfits_a_few_images()
    {
        var set = ImageSets.FromFolder("toy", IdxTests.WriteSet(trainCount: 20, testCount: 10, size: 12));
        var config = Config();
        using var task = new ImageClassificationTask(config, config.Vision, set, CPU);

        var result = task.Result(new Trainer(task, config).Run());

        Assert.Equal(RunStatus.Done, result.Run.Status);
        Assert.Equal(new[] { 50, 100 }, result.Curve.Select(e => e.Step));
        Assert.Equal(0.0, result.Final!.TrainError);
        Assert.True(result.Final.TrainLoss < 0.1, $"train loss {result.Final.TrainLoss}");
        Assert.Equal(8, result.AtInit.Norms.Count);                  // one norm per weight layer
        Assert.All(result.AtInit.Norms, n => Assert.True(n > 0));
        Assert.True(result.DuringTraining.FirstToLast > 0);
    }

    [Fact]
    public void The_gradient_probe_leaves_the_model_unchanged()
    {
        var set = ImageSets.FromFolder("toy", IdxTests.WriteSet(trainCount: 20, testCount: 4, size: 12));
        using var task = new ImageClassificationTask(Config(), Config().Vision, set, CPU);
        var before = task.Model.buffers().Select(b => b.clone()).ToList();

        var norms = task.ProbeGradients();

        Assert.Equal(task.Model.WeightLayers.Select(l => l.Name), norms.Layers);
        Assert.All(task.Model.buffers().Zip(before), p => Assert.True(p.First.equal(p.Second).all().item<bool>()));
        Assert.All(task.Model.parameters(), p => Assert.True(p.grad is null || p.grad.abs().max().item<float>() == 0));
    }

    sealed class Recorder(Action<StepMetrics>? onStep = null) : ITrainingObserver
    {
        public List<double> Losses { get; } = [];
        public List<Diagnostic> Probes { get; } = [];
        public List<string> Units { get; } = [];
        public void OnStep(StepMetrics step)
        {
            Losses.Add(step.Loss);
            Units.Add(step.Unit);
            onStep?.Invoke(step);
        }
        public void OnDiagnostic(Diagnostic diagnostic) => Probes.Add(diagnostic);
    }

    [Fact]
    public void A_classifier_resumed_from_its_checkpoint_ends_bit_identical()
    {
        // Random crops and three batches per epoch: the resumed sampler must replay shuffles and crops.
        var set = ImageSets.FromFolder("toy", IdxTests.WriteSet(trainCount: 28, testCount: 6, size: 12));
        var config = Config("train.max_iters=30", "train.eval_interval=8", "train.batch_size=8", "data.augment=true", "train.weight_decay=1e-4");
        string checkpoints = TestSupport.TempDir();

        var straight = new Recorder();
        using var whole = new ImageClassificationTask(config, config.Vision, set, CPU);
        var wholeResult = whole.Result(new Trainer(whole, config).Run(straight));

        // Stopped after step 13: the checkpoint of step 10 is what a kill leaves behind.
        using var cancel = new CancellationTokenSource();
        using (var first = new ImageClassificationTask(config, config.Vision, set, CPU))
            new Trainer(first, config).Run(new Recorder(s => { if (s.Step == 13) cancel.Cancel(); }), cancel.Token, new CheckpointPolicy(checkpoints, 5));
        var newest = TrainingCheckpoint.Latest(checkpoints, config.RunId);
        Assert.Equal(10, newest?.Step);

        var resumed = new Recorder();
        using var second = new ImageClassificationTask(config, config.Vision, set, CPU);
        var secondResult = second.Result(new Trainer(second, config).Run(resumed, default, new CheckpointPolicy(checkpoints, 5, ResumeFrom: newest)));

        Assert.Equal(RunStatus.Done, secondResult.Run.Status);
        Assert.Equal(straight.Losses.Skip(10), resumed.Losses);
        Assert.Equal(wholeResult.Curve, secondResult.Curve);
        Assert.Equal(wholeResult.AtInit.Norms, secondResult.AtInit.Norms);
        Assert.Equal(wholeResult.DuringTraining.Norms, secondResult.DuringTraining.Norms);
        foreach (var ((name, a), (_, b)) in whole.Model.state_dict().Zip(second.Model.state_dict()))
            Assert.True(a.equal(b).all().item<bool>(), name);
    }

    [Fact]
    public void A_classifier_reports_images_per_second_and_probes_every_weight_layer()
    {
        var set = ImageSets.FromFolder("toy", IdxTests.WriteSet(trainCount: 16, testCount: 4, size: 12));
        var config = Config("train.max_iters=4", "train.probe_interval=2");
        using var task = new ImageClassificationTask(config, config.Vision, set, CPU);
        var recorder = new Recorder();
        new Trainer(task, config).Run(recorder);

        Assert.All(recorder.Units, u => Assert.Equal("images", u));
        Assert.Equal(new[] { 0, 2, 3 }, recorder.Probes.Where(p => p.Name == "grad_norm").Select(p => p.Step).Distinct()); // init, every 2 steps, the last step
        Assert.Equal(3 * task.Model.WeightLayers.Count, recorder.Probes.Count(p => p.Name == "grad_norm"));
        // What the results store keeps of the classifier: the final evaluation's error rates and averages as readings at
        // its step, and each weight layer's gradient norm at initialisation (step 0) and averaged over the run (at its end).
        var result = task.Result(new TrainResult(RunStatus.Done, 4, null, 0, 0, 0, 0));
        var final = result.Final!;
        var scalars = recorder.Probes.Where(p => p.Step == 4 && p.Index == 0 && !p.Name.StartsWith("grad_norm", StringComparison.Ordinal))
            .ToDictionary(p => p.Name, p => p.Value);
        Assert.Equal(final.TrainError, scalars[ClassifierEval.TrainErrorName]);
        Assert.Equal(final.ValError, scalars[ClassifierEval.ValErrorName]);
        Assert.Equal(final.TestError, scalars[ClassifierEval.TestErrorName]);
        Assert.Equal(final.BatchLoss, scalars[ClassifierEval.BatchLossName]);
        Assert.Equal(final.Epoch, scalars[ClassifierEval.EpochName]);
        Assert.Equal(result.AtInit.Norms, recorder.Probes.Where(p => p.Name == ClassifierEval.GradNormAtInitName && p.Step == 0).Select(p => p.Value));
        Assert.Equal(result.DuringTraining.Norms, recorder.Probes.Where(p => p.Name == ClassifierEval.GradNormMeanName && p.Step == 4).Select(p => p.Value));
        Assert.Equal(task.Model.WeightLayers.Select(l => l.Name), task.ReadingLabels()[ClassifierEval.GradNormAtInitName]);
    }

    [Fact]
    public void A_classifier_whose_weights_blow_up_is_marked_diverged()
    {
        var set = ImageSets.FromFolder("toy", IdxTests.WriteSet(trainCount: 16, testCount: 4, size: 12));
        var config = Config("train.max_iters=20", "train.eval_interval=5");
        using var task = new ImageClassificationTask(config, config.Vision, set, CPU);
        var poison = new Recorder(s =>
        {
            if (s.Step != 7) return;
            using var _ = no_grad();
            task.Model.parameters().First().fill_(double.NaN);
        });
        var result = task.Result(new Trainer(task, config).Run(poison));

        Assert.Equal(RunStatus.Diverged, result.Run.Status);
        Assert.Equal(8, result.Run.Steps);
        Assert.Contains("non-finite", result.Run.Note);
        Assert.Equal(5, result.Final!.Step); // the last good evaluation is kept
    }

    [Fact]
    public void Step_schedule_divides_by_ten_at_half_and_three_quarters()
    {
        var s = new StepSchedule(0.1, WarmupIters: 0, MaxIters: 64000);
        Assert.Equal(new[] { 32000, 48000 }, s.Milestones);
        Assert.Equal(0.1, s.At(31999), 12);
        Assert.Equal(0.01, s.At(32000), 12);
        Assert.Equal(0.001, s.At(48000), 12);
    }

    [Fact]
    public void Sgd_with_momentum_follows_its_equations()
    {
        var p = new TorchSharp.Modules.Parameter(tensor(new float[] { 1f, 2f }));
        var sgd = new Sgd([(p, true)], momentum: 0.9, weightDecay: 0.1);
        p.grad = tensor(new float[] { 0.5f, -1f });
        sgd.Update(0.1); // buf = g + 0.1 p = [0.6, -0.8]; p -= 0.1 buf
        Assert.True(p.allclose(tensor(new float[] { 0.94f, 2.08f }), atol: 1e-6));
        sgd.Update(0.1); // buf = 0.9 [0.6, -0.8] + g + 0.1 p = [0.54 + 0.594, -0.72 - 0.792]
        Assert.True(p.allclose(tensor(new float[] { 0.94f - 0.1134f, 2.08f + 0.1512f }), atol: 1e-6));
    }

    [Theory]
    [InlineData("model.depth=21", "6n+2")]
    [InlineData("data.images=cifar", "unknown image set 'cifar'")]
    [InlineData("model.name=resnett", "did you mean 'resnet'")]
    public void Bad_vision_configs_are_one_clear_line(string assignment, string expected)
    {
        var ex = Assert.Throws<ConfigException>(() => Config(assignment));
        Assert.Contains(expected, ex.Message);
        Assert.DoesNotContain("\n", ex.Message);
    }
}
