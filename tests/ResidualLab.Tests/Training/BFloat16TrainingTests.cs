using ResidualLab.Bench;
using ResidualLab.Checkpoints;
using ResidualLab.Config;
using ResidualLab.Data;
using ResidualLab.Experiments;
using ResidualLab.Training;
using ResidualLab.Training.Tasks;
using static TorchSharp.torch;
using Parameter = TorchSharp.Modules.Parameter;

namespace ResidualLab.Tests.Training;

[Trait(Slow.Category, Slow.Value)]
public class BFloat16TrainingTests
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

    /// <summary>A 2-layer tiny GPT trained on a corpus file written here; overrides as "section.key=value".</summary>
    static RunConfig Config(params string[] overrides)
    {
        string corpus = Path.Combine(TestSupport.TempDir(), "corpus.txt");
        File.WriteAllText(corpus, TestSupport.TinyText());
        return TestSupport.TinyConfig(["model.n_layer=2", $"data.path={corpus}", .. overrides]);
    }

    static (LanguageModelTask Task, Trainer Trainer) NewTrainer(RunConfig config) =>
        TestSupport.GptTrainer(config, CorpusLoader.Load(config.Gpt.Data, config.Gpt.Shape.BlockSize));

    [Fact]
    public void A_bf16_gpt_trains_on_bf16_weights_kept_in_step_with_fp32_masters()
    {
        var (task, trainer) = NewTrainer(Config("train.dtype=bfloat16", "train.max_iters=100"));
        var recorder = new Recorder();

        var result = trainer.Run(recorder);

        Assert.Equal(RunStatus.Done, result.Status);
        Assert.All(recorder.Losses, l => Assert.True(double.IsFinite(l)));
        Assert.True(recorder.Losses.Skip(90).Average() < recorder.Losses.Take(5).Average() - 0.5,
            $"loss {recorder.Losses.Take(5).Average():0.000} -> {recorder.Losses.Skip(90).Average():0.000}");
        Assert.True(double.IsFinite(result.FinalEval!.ValLoss));

        // Every matrix (embeddings, attention, MLP) and the sublayers' biases are bf16; the LayerNorms stay fp32.
        var named = task.Model.named_parameters().ToList();
        Assert.All(named.Where(p => p.parameter.dim() >= 2), p => Assert.Equal(ScalarType.BFloat16, p.parameter.dtype));
        Assert.Contains(named, p => p.name.Contains("attn.c_attn.bias") && p.parameter.dtype == ScalarType.BFloat16);
        Assert.All(named.Where(p => p.name.Contains("norm") || p.name.StartsWith("ln_f")), p => Assert.Equal(ScalarType.Float32, p.parameter.dtype));

        // The optimiser's masters are fp32, and the model's bf16 weights are the masters rounded to bf16.
        Assert.NotEmpty(task.Optimizer.MasterWeights);
        Assert.All(task.Optimizer.MasterWeights, m => Assert.Equal(ScalarType.Float32, m.dtype));
        using (NewDisposeScope())
            foreach (var (param, master) in task.Optimizer.MasterViews())
            {
                Assert.Equal(ScalarType.Float32, master.dtype);
                Assert.True(master.to(ScalarType.BFloat16).equal(param).all().item<bool>());
                Assert.False(master.equal(param.to(ScalarType.Float32)).all().item<bool>()); // the masters hold more than bf16 can
            }
        task.Dispose();
    }

    [Fact]
    public void The_first_bf16_loss_is_within_0_05_of_the_fp32_loss_from_the_same_seed()
    {
        var fp32 = NewTrainer(Config());
        double expected = fp32.Trainer.Step(fp32.Task.Schedule.At(0)).Loss;
        var bf16 = NewTrainer(Config("train.dtype=bfloat16"));
        double loss = bf16.Trainer.Step(bf16.Task.Schedule.At(0)).Loss;

        Assert.InRange(loss, expected - 0.05, expected + 0.05);
        Assert.NotEqual(expected, loss); // the bf16 model really computes in bf16
        fp32.Task.Dispose();
        bf16.Task.Dispose();
    }

    [Fact]
    public void AdamW_accumulates_updates_below_bf16_resolution_in_its_fp32_masters()
    {
        // bf16 numbers just below 1 are 2^-8 apart, so one AdamW step of 0.0005 rounds back to 1: updated in
        // bf16, the weight would never move. The fp32 master adds the steps up, and the bf16 weight follows
        // once the master passes the midpoint 0.998046875 between 1 and 0.99609375, at the fourth step.
        var p = new Parameter(ones(2, 2, dtype: ScalarType.BFloat16));
        var opt = new AdamW([(p, false)], 0.9, 0.99, weightDecay: 0);
        var master = opt.MasterWeights.Single();
        float[] expectedWeights = [1f, 1f, 1f, 0.99609375f];
        for (int step = 1; step <= 4; step++)
        {
            opt.ZeroGrad();
            p.grad!.fill_(1.0);
            opt.CollectGradients();
            Assert.Equal(2.0, GradientClipping.Norm(opt.Gradients), 6); // in fp32, from the upcast gradients
            opt.Update(lr: 5e-4); // constant gradient: every Adam step moves by lr
            Assert.Equal(1 - 5e-4 * step, master[0].item<float>(), 6);
            Assert.Equal(expectedWeights[step - 1], p[0, 0].to(ScalarType.Float32).item<float>());
        }
        opt.Dispose();
    }

    [Fact]
    public void A_bf16_run_resumed_from_its_checkpoint_ends_bit_identical()
    {
        var config = Config("train.dtype=bfloat16", "train.max_iters=24", "model.dropout=0.1", "train.eval_interval=8");
        string checkpoints = TestSupport.TempDir();
        var straight = new Recorder();
        var whole = NewTrainer(config);
        whole.Trainer.Run(straight);

        using var cancel = new CancellationTokenSource();
        var first = NewTrainer(config);
        first.Trainer.Run(new Recorder(s => { if (s.Step == 13) cancel.Cancel(); }), cancel.Token, new CheckpointPolicy(checkpoints, 5));
        var newest = TrainingCheckpoint.Latest(checkpoints, config.RunId);
        Assert.Equal(10, newest?.Step);

        var resumed = new Recorder();
        var second = NewTrainer(config);
        var result = second.Trainer.Run(resumed, default, new CheckpointPolicy(checkpoints, 5, ResumeFrom: newest));

        Assert.Equal(RunStatus.Done, result.Status);
        Assert.Equal(straight.Losses.Skip(10), resumed.Losses);
        using (NewDisposeScope())
            foreach (var (a, b) in whole.Task.Optimizer.MasterWeights.Zip(second.Task.Optimizer.MasterWeights))
                Assert.True(a.equal(b).all().item<bool>());
        foreach (var t in new[] { whole, first, second }) t.Task.Dispose();
    }

    [Fact]
    public void A_finished_bf16_run_saves_fp32_weights_that_export_loads()
    {
        var config = Config("train.dtype=bfloat16", "train.max_iters=40");
        string runDir = TestSupport.TempDir();

        var result = TestSupport.Execute(config, runDir);

        var export = RunExport.Load(runDir);
        using var model = export.Model;
        Assert.All(model.parameters(), p => Assert.Equal(ScalarType.Float32, p.dtype));
        model.eval();
        var corpus = CorpusLoader.Load(config.Gpt.Data, config.Gpt.Shape.BlockSize);
        double valLoss = LanguageModelTask.FixedBatchLoss(model, corpus.Val, config.Train.BatchSize, config.Train.EvalBatches, CPU);
        Assert.InRange(valLoss, result.FinalEval!.ValLoss - 0.05, result.FinalEval.ValLoss + 0.05); // fp32 masters vs their bf16 copy
    }

    [Fact]
    public void The_bench_trains_a_gpt_workload_in_bfloat16()
    {
        var workload = new GptWorkload("tiny", NLayer: 1, DModel: 32, NHead: 2, BlockSize: 16, BatchSize: 4);
        var bf16 = workload with { DType = "bfloat16" };
        Assert.Contains("train.dtype=\"bfloat16\"", bf16.Config("cpu", 1).Canonical);
        var result = bf16.Run(steps: 3, warmup: 1, "cpu", threads: 1);
        Assert.True(result.MedianStepMs > 0 && double.IsFinite(result.MedianStepMs));
        var ex = Assert.Throws<ConfigException>(() => GptBench.Run(workload, 3, 1, "cpu", 1, ["train.dtype=float8"]));
        Assert.Contains("'train.dtype' must be float32 or bfloat16", ex.Message);
    }
}
