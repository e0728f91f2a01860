using ResidualLab.Training;
using static TorchSharp.torch;

namespace ResidualLab.Tests.Training;

public class TrainerTests
{
    sealed class Recorder : ITrainingObserver
    {
        public List<double> Losses { get; } = [];
        public void OnStep(StepMetrics step) => Losses.Add(step.Loss);
    }

    static (TrainResult Result, List<double> Losses) Train(params string[] overrides)
    {
        var config = TestSupport.TinyConfig(overrides);
        var (task, trainer) = TestSupport.GptTrainer(config, TestSupport.TinyCorpus(config.Gpt.Shape.BlockSize));
        var recorder = new Recorder();
        var result = trainer.Run(recorder);
        task.Dispose();
        return (result, recorder.Losses);
    }

    [Fact]
    public void One_layer_model_overfits_a_tiny_corpus()
    {
        var (result, losses) = Train("train.max_iters=300", "model.d_model=48", "train.lr=1e-2", "train.weight_decay=0");
        Assert.Equal(RunStatus.Done, result.Status);
        // The tiny corpus repeats two lines: a model that memorises it is far below the unigram entropy (~2.9 nats).
        Assert.True(result.FinalEval!.TrainLoss < 0.5, $"train loss {result.FinalEval.TrainLoss}");
        Assert.True(losses[^1] < losses[0] / 5);
    }

    [Fact]
    public void Same_seed_gives_bit_identical_losses()
    {
        var (_, a) = Train("train.max_iters=25", "model.dropout=0.1");
        var (_, b) = Train("train.max_iters=25", "model.dropout=0.1");
        Assert.Equal(a, b);
        var (_, c) = Train("train.max_iters=25", "model.dropout=0.1", "train.seed=8");
        Assert.NotEqual(a, c);
    }

    [Fact]
    public void Run_with_batches_made_ahead_matches_synchronous_steps_bit_for_bit()
    {
        var config = TestSupport.TinyConfig("train.max_iters=30", "model.dropout=0.1");
        var corpus = TestSupport.TinyCorpus(config.Gpt.Shape.BlockSize);
        var prefetching = TestSupport.GptTrainer(config, corpus);
        var recorder = new Recorder();
        prefetching.Trainer.Run(recorder);

        var synchronous = TestSupport.GptTrainer(config, corpus);
        synchronous.Task.Model.train();
        var losses = Enumerable.Range(0, 30).Select(step => synchronous.Trainer.Step(synchronous.Task.Schedule.At(step)).Loss).ToList();

        Assert.Equal(losses, recorder.Losses);
        Assert.Equal(synchronous.Task.TrainBatches.State, prefetching.Task.TrainBatches.State); // where the 31st batch starts
        prefetching.Task.Dispose();
        synchronous.Task.Dispose();
    }

    [Theory]
    [InlineData("none")]
    [InlineData("pre-norm")]
    [InlineData("post-norm")]
    public void Every_foundation_scheme_trains(string scheme)
    {
        var (result, losses) = Train($"connection.name={scheme}", "model.n_layer=2", "train.max_iters=100");
        Assert.Equal(RunStatus.Done, result.Status);
        Assert.All(losses, l => Assert.True(double.IsFinite(l)));
        Assert.True(losses.Skip(90).Average() < losses.Take(5).Average() - 0.3,
            $"{scheme}: loss {losses.Take(5).Average():0.000} -> {losses.Skip(90).Average():0.000}");
    }

    [Fact]
    public void Schedule_warms_up_then_decays_to_min()
    {
        var s = new LrSchedule(1.0, 0.1, 10, 100);
        Assert.True(s.At(0) < s.At(5) && s.At(5) < s.At(10));
        Assert.Equal(1.0, s.At(10), 6);
        Assert.Equal(0.55, s.At(55), 6);
        Assert.Equal(0.1, s.At(100), 9);
        Assert.Equal(0.1, s.At(1000), 9);
    }

    [Fact]
    public void Decay_applies_to_matrices_but_not_to_vectors()
    {
        // With zero gradients, AdamW's only effect is the decoupled decay.
        var matrix = new TorchSharp.Modules.Parameter(ones(2, 2));
        var vector = new TorchSharp.Modules.Parameter(ones(2));
        matrix.grad = zeros(2, 2);
        vector.grad = zeros(2);
        var opt = new AdamW([(matrix, true), (vector, false)], 0.9, 0.99, weightDecay: 0.5);
        opt.Update(lr: 0.1);
        Assert.Equal(0.95f, matrix[0, 0].item<float>(), 6);
        Assert.Equal(1f, vector[0].item<float>());
    }

    [Fact]
    public void A_groups_learning_rate_factor_scales_its_step_and_its_decay()
    {
        var plain = new TorchSharp.Modules.Parameter(ones(2));
        var scaled = new TorchSharp.Modules.Parameter(ones(2));
        var opt = new AdamW([(plain, true, 1.0), (scaled, true, 0.5)], 0.9, 0.99, weightDecay: 0.1);
        plain.grad!.fill_(1);
        scaled.grad!.fill_(1);
        opt.Update(lr: 0.1);
        // First step: decay by (1 - lr s wd), then -lr s sign(g): the factor s acts as a PyTorch group's lr.
        Assert.Equal(1 * (1 - 0.1 * 0.1) - 0.1, plain[0].item<float>(), 5);
        Assert.Equal(1 * (1 - 0.05 * 0.1) - 0.05, scaled[0].item<float>(), 5);
    }

    [Fact]
    public void Flat_adamw_step_matches_the_closed_form_and_updates_the_module_parameters()
    {
        using var linear = TorchSharp.torch.nn.Linear(2, 2);
        using (no_grad()) { linear.weight!.fill_(1.0); linear.bias!.fill_(1.0); }
        var opt = new AdamW([(linear.weight!, true), (linear.bias!, false)], 0.9, 0.99, weightDecay: 0.1);
        // The parameters now live in flat buffers with flat gradients; the module still sees them.
        linear.weight!.grad!.fill_(0.5);
        linear.bias!.grad!.fill_(-2.0);
        opt.Update(lr: 0.1);
        // First step: m_hat = g, v_hat = g^2, so the update is -lr * sign(g) (eps aside), after decay.
        Assert.Equal(1 * (1 - 0.1 * 0.1) - 0.1, linear.weight![0, 1].item<float>(), 5);
        Assert.Equal(1 + 0.1, linear.bias![1].item<float>(), 5);
        Assert.Equal(Math.Sqrt(4 * 0.25 + 2 * 4.0), GradientClipping.Norm(opt.Gradients), 5);
        GradientClipping.Clip(opt.Gradients, 1.0);
        Assert.Equal(1.0, GradientClipping.Norm(opt.Gradients), 4);
    }

    [Fact]
    public void Non_finite_loss_marks_the_run_diverged_and_keeps_last_metrics()
    {
        var config = TestSupport.TinyConfig("train.max_iters=20", "train.eval_interval=5");
        var (task, trainer) = TestSupport.GptTrainer(config, TestSupport.TinyCorpus(config.Gpt.Shape.BlockSize));
        var poison = new PoisonAt(task.Model, step: 12);
        var result = trainer.Run(poison);
        Assert.Equal(RunStatus.Diverged, result.Status);
        Assert.Equal(13, result.Steps); // the poisoned weights make step 13's loss NaN
        Assert.Contains("non-finite", result.Note);
        Assert.Equal(10, result.FinalEval!.Step); // the last good evaluation is kept
        Assert.True(double.IsFinite(result.FinalEval.ValLoss));
        task.Dispose();
    }

    /// <summary>Writes a NaN into the weights after a given step, as an exploding update would.</summary>
    sealed class PoisonAt(TorchSharp.torch.nn.Module model, int step) : ITrainingObserver
    {
        public void OnStep(StepMetrics s)
        {
            if (s.Step != step) return;
            using var _ = no_grad();
            model.parameters().First().fill_(double.NaN);
        }
    }
}
