using ResidualLab.Config;
using ResidualLab.Connections;
using ResidualLab.Layers;
using ResidualLab.Models;
using ResidualLab.Training.Tasks;
using static TorchSharp.torch;

namespace ResidualLab.Tests.Layers;

/// <summary>What each model.init gives every kind of tensor: the std of matrices, the scaled projections, biases, embeddings and norms.</summary>
public class InitTests
{
    const int D = 128, Layers = 3, Vocab = 50;

    static Gpt Build(ModelInit init, string scheme = "pre-norm")
    {
        manual_seed(11);
        return new Gpt(new GptConfig(Vocab, NLayer: Layers, DModel: D, NHead: 4, BlockSize: 32, Init: init), ConnectionCatalog.Create(scheme));
    }

    static Dictionary<string, Tensor> Params(Gpt model) => model.named_parameters().ToDictionary(p => p.name, p => (Tensor)p.parameter);

    static double Std(Tensor t) => t.std().item<float>();

    /// <summary>The std of a sample of n values is within ~5/sqrt(2n) of the true std at 5 sigma; 5% covers every tensor here.</summary>
    static void AssertStd(double expected, Tensor t, string what) =>
        Assert.True(Math.Abs(Std(t) / expected - 1) < 0.05, $"{what}: std {Std(t):G4}, expected {expected:G4}");

    static void AssertZero(Tensor t, string what) => Assert.True(t.abs().max().item<float>() == 0, $"{what} is not zero");

    [Fact]
    public void Gpt2_init_is_normal_002_with_projections_scaled_by_one_over_sqrt_2L_and_zero_biases()
    {
        using var model = Build(ModelInit.Gpt2);
        var p = Params(model);
        AssertStd(0.02, p["wte.weight"], "wte");
        AssertStd(0.02, p["wpe.weight"], "wpe");
        for (int l = 0; l < Layers; l++)
        {
            AssertStd(0.02, p[$"h.{l}.attn.c_attn.weight"], "c_attn");
            AssertStd(0.02, p[$"h.{l}.mlp.c_fc.weight"], "c_fc");
            AssertStd(0.02 / Math.Sqrt(2 * Layers), p[$"h.{l}.attn.c_proj.weight"], "attn c_proj");
            AssertStd(0.02 / Math.Sqrt(2 * Layers), p[$"h.{l}.mlp.c_proj.weight"], "mlp c_proj");
            foreach (var bias in new[] { "attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj" }) AssertZero(p[$"h.{l}.{bias}.bias"], bias);
        }
        Assert.True(p["ln_f.weight"].eq(1).all().item<bool>());
        AssertZero(p["ln_f.bias"], "ln_f.bias");
    }

    [Fact]
    public void Pytorch_init_is_each_modules_default()
    {
        using var model = Build(ModelInit.PyTorch);
        var p = Params(model);
        AssertStd(1.0, p["wte.weight"], "wte");
        AssertStd(1.0, p["wpe.weight"], "wpe");
        foreach (var (name, fanIn) in new[] { ("attn.c_attn", D), ("attn.c_proj", D), ("mlp.c_fc", D), ("mlp.c_proj", 4 * D) })
        {
            double bound = 1 / Math.Sqrt(fanIn);
            var w = p[$"h.1.{name}.weight"];
            var b = p[$"h.1.{name}.bias"];
            AssertStd(bound / Math.Sqrt(3), w, name); // U(-bound, bound)
            Assert.True(w.abs().max().item<float>() <= bound);
            Assert.True(b.abs().max().item<float>() <= bound);
            Assert.True(Std(b) > bound / 4, $"{name}.bias is not drawn"); // not zero, as in PyTorch
        }
    }

    [Fact]
    public void Ds_init_scales_each_blocks_xavier_uniform_by_one_over_sqrt_depth()
    {
        using var model = Build(ModelInit.DsInit);
        var p = Params(model);
        AssertStd(0.02, p["wte.weight"], "wte");
        for (int l = 0; l < Layers; l++)
        {
            double depth = Math.Sqrt(l + 1);
            // Xavier's uniform bound sqrt(6 / (fan_in + fan_out)) has std bound / sqrt(3); q, k, v each d -> d.
            AssertStd(Math.Sqrt(2.0 / (D + D)) / depth, p[$"h.{l}.attn.c_attn.weight"], $"block {l} c_attn");
            AssertStd(Math.Sqrt(2.0 / (D + D)) / depth, p[$"h.{l}.attn.c_proj.weight"], $"block {l} attn c_proj");
            AssertStd(Math.Sqrt(2.0 / (D + 4 * D)) / depth, p[$"h.{l}.mlp.c_fc.weight"], $"block {l} c_fc");
            AssertStd(Math.Sqrt(2.0 / (4 * D + D)) / depth, p[$"h.{l}.mlp.c_proj.weight"], $"block {l} mlp c_proj");
            AssertZero(p[$"h.{l}.mlp.c_fc.bias"], "c_fc.bias");
        }
    }

    [Fact]
    public void A_scheme_with_its_own_init_applies_it_on_top_of_model_init()
    {
        using var plain = Build(ModelInit.PyTorch);
        using var deepNorm = Build(ModelInit.PyTorch, "deepnorm");
        double beta = Math.Pow(8.0 * Layers, -0.25); // DeepNorm's gain for the value and output projections
        var a = Params(plain);
        var b = Params(deepNorm);
        // Same seed, same draw order: DeepNorm's weights are the PyTorch-initialised ones times beta.
        Assert.True(b["h.0.mlp.c_proj.weight"].allclose(a["h.0.mlp.c_proj.weight"] * beta, rtol: 1e-5, atol: 1e-7));
        Assert.True(b["h.0.mlp.c_fc.weight"].allclose(a["h.0.mlp.c_fc.weight"] * beta, rtol: 1e-5, atol: 1e-7));
    }

    [Fact]
    public void Init_and_decay_keys_stay_out_of_the_run_id_at_their_defaults()
    {
        string plain = RunConfig.From(new ConfigValues()).Canonical;
        foreach (var defaults in new[] { "model.init=gpt2", "train.decay=matrices" })
        {
            var v = new ConfigValues();
            v.Override(defaults);
            Assert.Equal(plain, RunConfig.From(v).Canonical);
        }
        foreach (var other in new[] { "model.init=pytorch", "model.init=ds-init", "train.decay=all" })
        {
            var v = new ConfigValues();
            v.Override(other);
            Assert.Contains(other.Replace("=", "=\"") + "\"", RunConfig.From(v).Canonical);
        }
        var bad = new ConfigValues();
        bad.Override("model.init=pytorh");
        Assert.Contains("did you mean 'pytorch'", Assert.Throws<ConfigException>(() => RunConfig.From(bad)).Message);
    }

    [Theory]
    [InlineData("matrices", false)]
    [InlineData("all", true)]
    public void Decay_all_also_decays_norms_biases_and_residual_scalars(string decay, bool decays)
    {
        var config = TestSupport.TinyConfig($"train.decay={decay}", "train.weight_decay=0.5", "connection.name=rezero");
        using var task = new LanguageModelTask(config, config.Gpt, TestSupport.TinyCorpus(config.Gpt.Shape.BlockSize), CPU);
        var p = Params(task.Model);
        using (no_grad()) p["h.0.conn_attn.gain"].fill_(1.0);
        var before = p.ToDictionary(kv => kv.Key, kv => kv.Value.clone());
        // With zero gradients Adam's step is zero: what changes is the decay alone, p (1 - lr wd).
        task.Optimizer.ZeroGrad();
        task.Optimizer.Update(0.1);
        foreach (var name in new[] { "ln_f.weight", "h.0.mlp.c_fc.bias", "h.0.conn_attn.gain" })
        {
            double expected = decays ? 0.95 : 1.0;
            Assert.True(p[name].allclose(before[name] * expected, rtol: 1e-6, atol: 0), $"{name} with train.decay={decay}");
        }
        Assert.True(p["h.0.mlp.c_fc.weight"].allclose(before["h.0.mlp.c_fc.weight"] * 0.95, rtol: 1e-6, atol: 0));
    }
}
