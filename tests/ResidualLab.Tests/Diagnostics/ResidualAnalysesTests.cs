using ResidualLab.Checkpoints;
using ResidualLab.Connections;
using ResidualLab.Diagnostics;
using ResidualLab.Hooks;
using ResidualLab.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace ResidualLab.Tests.Diagnostics;

// The analyses of `reslab probe` on hooks: direct logit attribution, patching, tuned lens, export.
public class ResidualAnalysesTests
{
    static readonly GptConfig Tiny = new(VocabSize: 13, NLayer: 3, DModel: 16, NHead: 2, BlockSize: 8);

    static Gpt Model(string scheme, ScalarType dtype = ScalarType.Float64, bool atInit = false)
    {
        manual_seed(5);
        var model = new Gpt(Tiny, ConnectionCatalog.Create(scheme));
        model.to(dtype);
        model.eval();
        if (atInit) return model;
        // Away from init, so every sublayer and map contributes.
        using (no_grad())
            foreach (var p in model.parameters()) p.add_(0.05 * randn_like(p));
        return model;
    }

    static Tensor Tokens() => tensor(new long[] { 1, 5, 2, 7, 3, 3, 9, 12, 0, 4, 8, 6, 11, 2, 5, 1 }, [2, 8]);
    static Tensor Targets() => Tokens().roll(-1, 1);

    [Theory]
    [InlineData("pre-norm")]
    [InlineData("mhc")]
    [InlineData("hyper-connections")]
    public void Direct_logit_attributions_and_the_norm_s_bias_sum_to_the_logit(string scheme)
    {
        using var model = Model(scheme);
        var dla = DirectLogitAttribution.Compute(model, Tokens(), Targets());
        Assert.Equal(1 + 2 * Tiny.NLayer, dla.Values.Count);
        Assert.Equal(["embed", "0.attn", "0.mlp", "1.attn", "1.mlp", "2.attn", "2.mlp"], dla.Components);
        Assert.True(Math.Abs(dla.Closure) < 1e-10, $"closure {dla.Closure}");
        Assert.True(dla.Values.All(v => Math.Abs(v) > 1e-8));
        Assert.NotEqual(0, dla.BiasTerm);
    }

    [Theory]
    [InlineData("mudd")]
    [InlineData("dca")]
    [InlineData("denseformer")]
    public void Depth_steps_that_read_the_layer_history_are_replayed_over_each_part_s_own_history(string scheme)
    {
        // At init these schemes are the pre-norm model (MUDD selects the last layer, DCA sums every output,
        // DenseFormer is the identity): the decomposition is exact.
        using (var model = Model(scheme, atInit: true))
        {
            var dla = DirectLogitAttribution.Compute(model, Tokens(), Targets());
            Assert.True(Math.Abs(dla.Closure) < 1e-10, $"closure at init {dla.Closure}");
        }
        // Away from init the mixing weights depend on the history; the attribution is still defined for every part.
        using (var model = Model(scheme))
        {
            var dla = DirectLogitAttribution.Compute(model, Tokens(), Targets());
            Assert.Equal(1 + 2 * Tiny.NLayer, dla.Values.Count);
            Assert.All(dla.Values, v => Assert.True(double.IsFinite(v)));
            Assert.True(double.IsFinite(dla.Closure));
        }
    }

    [Fact]
    public void A_scheme_without_a_direct_path_for_one_part_is_a_one_line_error()
    {
        using var model = Model("ngpt");
        var error = Assert.Throws<ConfigException>(() => DirectLogitAttribution.Compute(model, Tokens(), Targets()));
        Assert.Contains("'ngpt'", error.Message);
        Assert.DoesNotContain('\n', error.Message);
    }

    [Fact]
    public void A_depth_step_that_normalises_leaves_a_closure_error()
    {
        using var model = Model("post-norm");
        Assert.True(Math.Abs(DirectLogitAttribution.Compute(model, Tokens(), Targets()).Closure) > 1e-3);
    }

    [Theory]
    [InlineData("pre-norm")]
    [InlineData("mhc")]
    public void Patching_the_embedding_at_the_corrupted_position_restores_everything(string scheme)
    {
        using var model = Model(scheme, ScalarType.Float32);
        var result = ActivationPatching.Run(model, Tokens(), Targets());
        Assert.Equal(3 * Tiny.NLayer, result.Hooks.Count);
        Assert.NotEqual(result.CleanLoss, result.CorruptLoss);
        Assert.Equal(1.0, result.Restored[0], 5); // blocks.0.hook_resid_pre: the corrupted run becomes the clean one
        Assert.All(result.AttributionRestored, r => Assert.True(double.IsFinite(r)));
        Assert.All(model.parameters(), p => Assert.Null(p.grad));
    }

    [Theory]
    [InlineData("pre-norm")]
    [InlineData("mhc")]
    public void The_tuned_lens_at_identity_is_the_logit_lens_and_training_lowers_its_loss(string scheme)
    {
        var config = TestSupport.TinyConfig($"connection.name={scheme}", "model.n_layer=2", "train.max_iters=10");
        var corpus = TestSupport.TinyCorpus(config.Gpt.Shape.BlockSize);
        var (task, trainer) = TestSupport.GptTrainer(config, corpus);
        trainer.Run();
        var t = config.Train;
        var probes = new LayerProbes(task.Model, corpus.Val, t.BatchSize, t.EvalBatches, CPU);
        var logitLens = probes.LogitLenses().Losses;
        using var lens = new TunedLens(task.Model);
        Assert.Equal(logitLens, lens.Evaluate(corpus.Val, t.BatchSize, t.EvalBatches, CPU).Losses);
        lens.Train(corpus.Train, t.BatchSize, 30, 1, CPU);
        var tuned = lens.Evaluate(corpus.Val, t.BatchSize, t.EvalBatches, CPU).Losses;
        Assert.True(tuned[0] < logitLens[0], $"block 0: tuned {tuned[0]}, logit lens {logitLens[0]}");
    }

    [Fact]
    public void Exported_activations_round_trip_under_transformer_lens_names()
    {
        using var model = Model("mhc", ScalarType.Float32);
        string path = Path.Combine(TestSupport.TempDir(), "acts.safetensors");
        try
        {
            string[] names = [HookNames.ResidPost(2), HookNames.AttnOut(0), HookNames.FinalNormalized];
            var written = ActivationExport.Write(path, model, Tokens(), names, new Dictionary<string, string> { ["run"] = "test" });
            Assert.Equal([HookNames.AttnOut(0), HookNames.ResidPost(2), HookNames.FinalNormalized], written); // forward order
            var file = SafeTensors.Read(path);
            Assert.Equal("test", file.Metadata["run"]);
            Assert.True(TensorBytes.ToTensor(file.Find(ActivationExport.InputIds)!).eq(Tokens()).all().item<bool>());
            using var _ = no_grad();
            var (_, cache) = model.RunWithCache(Tokens());
            foreach (var name in names)
            {
                var loaded = TensorBytes.ToTensor(file.Find(name)!);
                Assert.Equal(cache[name].shape, loaded.shape);
                Assert.True(loaded.eq(cache[name]).all().item<bool>(), name);
            }
            Assert.Equal([2L, 8, 4, 16], file.Find(HookNames.ResidPost(2))!.Shape); // the stream axis stays
            var error = Assert.Throws<ArgumentException>(() => ActivationExport.Write(path, model, Tokens(), ["blocks.9.hook_resid_post"], new Dictionary<string, string>()));
            Assert.Contains("unknown hook point 'blocks.9.hook_resid_post'", error.Message);
        }
        finally
        {
            File.Delete(path);
        }
    }
}
