using ResidualLab.Data;
using ResidualLab.Experiments;
using ResidualLab.Tests.Data;
using ResidualLab.Training;
using static TorchSharp.torch;

namespace ResidualLab.Tests.Training;

public class ClassifierTrainerTests
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
        var trainer = new ClassifierTrainer(Config(), set, CPU);

        var result = trainer.Run();

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
        var trainer = new ClassifierTrainer(Config(), set, CPU);
        var before = trainer.Model.buffers().Select(b => b.clone()).ToList();

        var norms = trainer.ProbeGradients();

        Assert.Equal(trainer.Model.WeightLayers.Select(l => l.Name), norms.Layers);
        Assert.All(trainer.Model.buffers().Zip(before), p => Assert.True(p.First.equal(p.Second).all().item<bool>()));
        Assert.All(trainer.Model.parameters(), p => Assert.True(p.grad is null || p.grad.abs().max().item<float>() == 0));
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
