using ResidualLab.Diagnostics;
using ResidualLab.Training.Tasks;
using static TorchSharp.torch;

namespace ResidualLab.Tests.Diagnostics;

// Post-hoc probes: lesions, swaps and the logit lens on a briefly trained tiny GPT.
public class LayerProbesTests
{
    static (LanguageModelTask Task, LayerProbes Probes) Trained(string scheme)
    {
        var config = TestSupport.TinyConfig($"connection.name={scheme}", "model.n_layer=3", "train.max_iters=10");
        var corpus = TestSupport.TinyCorpus(config.Gpt.Shape.BlockSize);
        var (task, trainer) = TestSupport.GptTrainer(config, corpus);
        trainer.Run();
        return (task, new LayerProbes(task.Model, corpus.Val, config.Train.BatchSize, config.Train.EvalBatches, CPU));
    }

    [Theory]
    [InlineData("pre-norm")]
    [InlineData("mhc")]
    public void The_logit_lens_at_the_last_layer_is_the_model_s_own_val_loss(string scheme)
    {
        var (task, probes) = Trained(scheme);
        var lens = probes.LogitLenses();
        Assert.Equal(3, lens.Losses.Count);
        var t = TestSupport.TinyConfig().Train;
        double own = LanguageModelTask.FixedBatchLoss(task.Model, TestSupport.TinyCorpus().Val, t.BatchSize, t.EvalBatches, CPU);
        Assert.Equal(own, lens.Losses[^1]);
        Assert.Equal(own, probes.Intact());
        Assert.NotEqual(own, lens.Losses[0]);
    }

    [Fact]
    public void Lesion_of_a_block_whose_output_projections_are_zero_changes_nothing()
    {
        var (task, probes) = Trained("pre-norm");
        using (no_grad())
            foreach (var (name, p) in task.Model.named_parameters())
                if (name.StartsWith("h.1.", StringComparison.Ordinal) && name.Contains(".c_proj."))
                    p.zero_();
        double intact = probes.Intact();
        var lesions = probes.Lesions().Losses;
        Assert.Equal(intact, lesions[1]);
        Assert.NotEqual(intact, lesions[0]);
        Assert.NotEqual(intact, lesions[2]);
        Assert.Equal(2, probes.Swaps().Losses.Count);
    }
}
