using ResidualLab.Connections;
using ResidualLab.Hooks;
using ResidualLab.Models;
using TorchSharp;
using static ResidualLab.Tests.Connections.Float64Gpt;
using static TorchSharp.torch;

namespace ResidualLab.Tests.Connections;

/// <summary>nGPT: the hidden state on the unit sphere, the weights renormalised after each step.</summary>
[Collection(ConnectionsCollection.Name)]
public class NGptTests
{
    static readonly GptConfig Tiny = new(VocabSize: 13, NLayer: 4, DModel: 16, NHead: 2, BlockSize: 8);

    /// <summary>The largest | |row| - 1 | over every unit-norm matrix of <paramref name="model"/>.</summary>
    static double WeightNormError(Gpt model)
    {
        using var _ = no_grad();
        return model.UnitNormMatrices()
            .Select(m => (linalg.vector_norm(m.Weight.to(ScalarType.Float64), dims: [m.Axis]) - 1).abs().max().item<double>()).Max();
    }

    /// <summary>The largest | |h| - 1 | over the stream at every hook point of every block.</summary>
    static double StreamNormError(Gpt model, Tensor tokens)
    {
        using var _ = no_grad();
        var (_, cache) = model.RunWithCache(tokens, name => name.Contains("hook_resid"));
        Assert.Equal(3 * model.Blocks.Count, cache.Names.Count);
        return cache.Names.Select(n => (linalg.vector_norm(cache[n].to(ScalarType.Float64), dims: [-1]) - 1).abs().max().item<double>()).Max();
    }

    [Fact]
    public void The_hidden_state_is_on_the_unit_sphere_and_the_weights_are_unit_norm_at_init()
    {
        using var model = Model(new NGptScheme(), Tiny);
        Assert.True(StreamNormError(model, Tokens()) < 1e-12);
        Assert.True(WeightNormError(model) < 1e-6); // normalised in fp32, then cast
        Assert.True(model.UnitNormWeights);
    }

    [Fact]
    public void The_depth_step_moves_the_state_towards_the_normalised_output_by_the_eigen_learning_rates()
    {
        var conn = (NGptResidual)new NGptScheme().Build(new ConnectionSite(16, 3, 8, () => nn.LayerNorm(16)));
        conn.to(ScalarType.Float64);
        Assert.True((conn.EigenLearningRates - NGptScheme.DefaultAlphaInit).abs().max().item<double>() < 1e-12);
        var alpha = conn.parameters().Single();
        using var _ = no_grad();
        alpha.copy_(linspace(-0.2, 0.3, 16, dtype: ScalarType.Float64)); // a negative a acts as |a|
        var h = NGptScheme.Unit(randn([2, 8, 16], dtype: ScalarType.Float64));
        var y = randn([2, 8, 16], dtype: ScalarType.Float64) * 5;
        var ctx = new LayerContext(8);
        var branch = conn.Prepare(h, ctx);
        Assert.Same(h, branch.Input); // no norm before the sublayer
        var rates = (linspace(-0.2, 0.3, 16, dtype: ScalarType.Float64) * (NGptScheme.DefaultAlphaInit * 4)).abs(); // alpha_scale 1/sqrt(16)
        var moved = h + rates * (y / linalg.vector_norm(y, dims: [-1], keepdim: true) - h);
        var expected = moved / linalg.vector_norm(moved, dims: [-1], keepdim: true);
        Assert.True(MaxDiff(conn.Combine(y, branch, ctx), expected) < 1e-12);
    }

    [Fact]
    public void The_post_step_hook_puts_the_updated_weights_back_on_the_sphere()
    {
        var config = TestSupport.TinyConfig("connection.name=ngpt", "model.n_layer=2", "train.weight_decay=0.1");
        var (task, trainer) = TestSupport.GptTrainer(config, TestSupport.TinyCorpus(config.Gpt.Shape.BlockSize));
        using var _ = task;
        Assert.Equal(0, task.Optimizer.WeightDecay); // the renormalisation sets the weights' scale, not decay
        for (int i = 0; i < 3; i++) trainer.Step(3e-3);
        Assert.True(WeightNormError(task.Model) < 1e-5);

        // One update by hand: the optimiser moves the weights off the sphere, the post-step hook puts them back.
        using (var scope = NewDisposeScope())
        {
            var loss = task.Loss(task.TrainBatches.NextBatch());
            task.Optimizer.ZeroGrad();
            loss.backward();
            task.Optimizer.CollectGradients();
            task.Optimizer.Update(3e-2);
        }
        Assert.True(WeightNormError(task.Model) > 1e-4);
        task.AfterStep(0);
        Assert.True(WeightNormError(task.Model) < 1e-5);
        task.Model.eval();
        using var tokens = randint(0, task.Model.Config.VocabSize, [2, config.Gpt.Shape.BlockSize], dtype: ScalarType.Int64);
        Assert.True(StreamNormError(task.Model, tokens) < 1e-5);
    }

    [Fact]
    public void The_vision_models_and_a_plain_residual_stack_refuse_it_in_one_line()
    {
        var ex = Assert.Throws<ConfigException>(() => TestSupport.TinyConfig("model.name=resnet", "model.depth=8", "connection.name=ngpt"));
        Assert.Contains("connection 'ngpt' does not apply to the vision models", ex.Message);
        Assert.DoesNotContain('\n', ex.Message);
        Assert.Throws<ArgumentException>(() =>
            new ResidualStack(new NGptScheme(), 4, [new TinySublayer(4)]));
    }

    [Fact]
    public void Hook_points_see_the_sphere_not_a_final_norm()
    {
        using var model = Model(new NGptScheme(), Tiny);
        using var _ = no_grad();
        var (logits, cache) = model.RunWithCache(Tokens(), n => n == HookNames.FinalNormalized);
        var hidden = model.Forward(Tokens());
        Assert.True(MaxDiff(cache[HookNames.FinalNormalized], hidden) < 1e-12); // no LayerNorm before the head
        Assert.True(logits.abs().max().item<double>() <= 1 + 1e-9);            // s_z = 1 at init: logits are cosines
    }
}
