using ResidualLab.Connections;
using ResidualLab.Models;
using static ResidualLab.Tests.Connections.Float64Gpt;
using static TorchSharp.torch;

namespace ResidualLab.Tests.Connections;

/// <summary>The defining property of each single-stream scheme of 2023-2025, checked in float64.</summary>
[Collection(ConnectionsCollection.Name)]
public class RecentSchemeTests
{
    static readonly GptConfig Tiny = new(VocabSize: 13, NLayer: 4, DModel: 16, NHead: 2, BlockSize: 8);

    static Gpt Model(ConnectionScheme scheme, GptConfig? config = null) => Float64Gpt.Model(scheme, config ?? Tiny);

    static double Compare(ConnectionScheme reference, ConnectionScheme scheme)
    {
        using var a = Model(reference);
        using var b = Model(scheme);
        CopyShared(a, b);
        return MaxDiff(Hidden(a), Hidden(b));
    }

    static IEnumerable<Connection> Connections(Gpt model) =>
        model.Blocks.SelectMany(b => new[] { b.AttentionConnection, b.MlpConnection });

    [Fact]
    public void Peri_ln_is_the_sandwich_scheme_by_another_name()
    {
        // Kim et al. 2025 (arXiv 2502.02732): y = x + Norm(F(Norm(x))), sandwich's update.
        Assert.Equal(new SandwichScheme(), ConnectionCatalog.Create("peri-ln"));
        Assert.Equal(new SandwichScheme(), ConnectionCatalog.Create("Peri-LN"));
    }

    [Fact]
    public void LayerNorm_scaling_divides_each_layers_norm_output_by_the_root_of_its_index()
    {
        using var model = Model(new LayerNormScalingScheme());
        var scales = Connections(model).Cast<LayerNormScalingResidual>().Select(c => c.Scale).ToList();
        Assert.Equal([1, 1, 1 / Math.Sqrt(2), 1 / Math.Sqrt(2), 1 / Math.Sqrt(3), 1 / Math.Sqrt(3), 0.5, 0.5], scales);
        using var _ = no_grad();
        var x = randn([2, 8, 16], dtype: ScalarType.Float64);
        var conn = model.Blocks[2].MlpConnection;
        var branch = conn.Prepare(x, new LayerContext(8));
        var expected = nn.functional.layer_norm(x, [16], eps: 1e-5) / Math.Sqrt(3);
        Assert.True(MaxDiff(branch.Input, expected) < 1e-12);
        var y = randn([2, 8, 16], dtype: ScalarType.Float64);
        Assert.True(MaxDiff(conn.Combine(y, branch, new LayerContext(8)), x + y) < 1e-12);
    }

    [Theory]
    [InlineData(0.25, 1)]
    [InlineData(0.5, 2)]
    [InlineData(0.0, 0)]
    public void Mix_ln_switches_from_post_to_pre_norm_at_its_layer(double fraction, int postLayers)
    {
        using var model = Model(new MixLnScheme(fraction));
        var post = Connections(model).Cast<MixLnResidual>().Select(c => c.IsPostNorm).ToList();
        Assert.Equal(Enumerable.Range(0, 8).Select(k => k / 2 < postLayers), post);
    }

    [Fact]
    public void Mix_ln_at_its_ends_is_pre_norm_and_post_norm()
    {
        Assert.True(Compare(new PreNormScheme(), new MixLnScheme(0)) < 1e-12);
        Assert.True(Compare(new PostNormScheme(), new MixLnScheme(1)) < 1e-12);
        Assert.True(Compare(new PreNormScheme(), new MixLnScheme()) > 1e-3); // the post-norm layer changes the function
    }

    [Fact]
    public void The_orthogonal_update_is_orthogonal_to_the_stream()
    {
        using var model = Model(new OrthogonalScheme());
        using var _ = no_grad();
        var x = randn([2, 8, 16], dtype: ScalarType.Float64) * 3;
        var y = randn([2, 8, 16], dtype: ScalarType.Float64) + x; // a branch output leaning on x
        var conn = model.Blocks[1].AttentionConnection;
        var ctx = new LayerContext(8);
        var update = conn.Combine(y, conn.Prepare(x, ctx), ctx) - x;
        var cosine = (update * x).sum(-1) / (update.norm(-1) * x.norm(-1));
        Assert.True(cosine.abs().max().item<double>() < 1e-6);
        // The orthogonal part is all of y but its projection: y = y_perp + c x.
        var along = y - update;
        var c = (along * x).sum(-1, keepdim: true) / (x * x).sum(-1, keepdim: true);
        Assert.True(MaxDiff(along, c * x) < 1e-9);
    }

    [Theory]
    [InlineData(1.0, 1, 0.25)]
    [InlineData(0.5, 1, 0.5)]
    [InlineData(1.0, 2, 0.5)]
    public void CompleteP_multiplies_every_branch_by_the_depth_rule(double alpha, int baseDepth, double multiplier)
    {
        using var model = Model(new CompletePScheme(alpha, baseDepth)); // 4 layers
        Assert.All(Connections(model).Cast<CompletePResidual>(), c => Assert.Equal(multiplier, c.Multiplier, 12));
        using var _ = no_grad();
        var x = randn([2, 8, 16], dtype: ScalarType.Float64);
        var y = randn([2, 8, 16], dtype: ScalarType.Float64);
        var conn = model.Blocks[3].AttentionConnection;
        var ctx = new LayerContext(8);
        Assert.True(MaxDiff(conn.Combine(y, conn.Prepare(x, ctx), ctx), x + multiplier * y) < 1e-12);
    }

    [Theory]
    [InlineData(1.0, 1, 1.0, 0.25)]
    [InlineData(0.5, 1, 0.5, 0.5)]
    [InlineData(1.0, 4, 1.0, 1.0)]
    public void CompleteP_pairs_its_multiplier_with_the_AdamW_depth_rule(double alpha, int baseDepth, double hiddenLr, double eps)
    {
        // Dey et al. 2025, table 1: the blocks' learning rate x m^(alpha - 1), eps x m^(-alpha), m = L / L_base.
        var scheme = new CompletePScheme(alpha, baseDepth);
        Assert.Equal(new AdamWRule(hiddenLr, eps), scheme.OptimizerRule(4));
        Assert.Equal(AdamWRule.None, (scheme with { LrRule = false }).OptimizerRule(4));
        // The language-model task gives the blocks' parameters the factor, the embeddings and the final norm none.
        var config = TestSupport.TinyConfig("connection.name=completep", $"connection.alpha={alpha}",
            $"connection.base_depth={baseDepth}", "model.n_layer=4");
        var (task, _) = TestSupport.GptTrainer(config, TestSupport.TinyCorpus(config.Gpt.Shape.BlockSize));
        var optimizer = (ResidualLab.Training.AdamW)task.Optimizer;
        Assert.Equal(ResidualLab.Training.AdamW.DefaultEps * 1e8 * eps, optimizer.Eps * 1e8, 12);
        var inBlocks = task.Model.Blocks.SelectMany(b => b.parameters()).Select(p => p.Handle).ToHashSet();
        var groups = ResidualLab.Training.ParameterGroups.Of(task.Model, config.Train.Decay, task.Model.Blocks, scheme.OptimizerRule(4));
        Assert.All(groups, g => Assert.Equal(inBlocks.Contains(g.Param.Handle) ? hiddenLr : 1.0, g.LrScale));
        Assert.Contains(groups, g => !inBlocks.Contains(g.Param.Handle));
    }

    [Fact]
    public void CompleteP_at_its_base_depth_is_pre_norm() =>
        Assert.True(Compare(new PreNormScheme(), new CompletePScheme(1, BaseDepth: Tiny.NLayer)) < 1e-12);

    [Theory]
    [InlineData("rw")]
    [InlineData("lr")]
    [InlineData("pa")]
    public void Laurel_at_init_is_pre_norm_and_its_augmentation_is_live(string variant)
    {
        using var preNorm = Model(new PreNormScheme());
        using var laurel = Model(new LaurelScheme(variant, Rank: 4, Previous: 3));
        CopyShared(preNorm, laurel);
        var expected = Hidden(preNorm);
        Assert.True(MaxDiff(Hidden(laurel), expected) < 1e-12);
        using (no_grad())
            foreach (var (name, p) in laurel.named_parameters().Where(np => np.name.Contains(".conn_") && !np.name.Contains("norm")))
                p.add_(0.1);
        Assert.True(MaxDiff(Hidden(laurel), expected) > 1e-3);
    }

    [Fact]
    public void Laurel_pa_adds_the_weighted_earlier_streams()
    {
        using var model = Model(new LaurelScheme("pa", Previous: 2));
        var conn = model.Blocks[1].MlpConnection; // sublayer 3: reads x_2 and x_1 besides x_3
        var gamma = conn.named_parameters().Single(p => p.name == "gamma").parameter;
        using var _ = no_grad();
        gamma.copy_(tensor(new[] { 0.3, -0.7 }, dtype: ScalarType.Float64));
        var ctx = new LayerContext(8);
        var history = Enumerable.Range(0, 4).Select(_ => randn([2, 8, 16], dtype: ScalarType.Float64)).ToList();
        foreach (var stream in history) ctx.Record(stream);
        for (int i = 0; i < 3; i++) ctx.Advance();
        var y = randn([2, 8, 16], dtype: ScalarType.Float64);
        var result = conn.Combine(y, conn.Prepare(history[3], ctx), ctx);
        Assert.True(MaxDiff(result, y + history[3] + 0.3 * history[2] - 0.7 * history[1]) < 1e-12);
    }

    [Fact]
    public void ResiDual_computes_its_two_streams_definition()
    {
        using var model = Model(new ResiDualScheme(), Tiny with { NLayer = 2 });
        var conns = Connections(model).ToList();
        var sublayers = Enumerable.Range(0, 4).Select(_ => randn([16, 16], dtype: ScalarType.Float64) * 0.3).ToList();
        using var _ = no_grad();
        var x0 = randn([2, 8, 16], dtype: ScalarType.Float64);

        // By the definition: x_a <- LN(x_a + f(x_a)), x_d <- x_d + f(x_a), output x_a + LN(x_d).
        Tensor LN(Tensor t) => nn.functional.layer_norm(t, [16], eps: 1e-5);
        Tensor xa = x0, xd = x0;
        foreach (var w in sublayers)
        {
            var f = xa.matmul(w).tanh();
            (xa, xd) = (LN(xa + f), xd + f);
        }
        var expected = xa + LN(xd);

        var scheme = new ResiDualScheme();
        var stream = scheme.Expand(x0);
        var ctx = new LayerContext(4);
        for (int k = 0; k < 4; k++)
        {
            var branch = conns[k].Prepare(stream, ctx);
            stream = conns[k].Combine(branch.Input.matmul(sublayers[k]).tanh(), branch, ctx);
            ctx.Advance();
        }
        Assert.True(MaxDiff(scheme.Reduce(stream), expected) < 1e-12);
    }

    /// <summary>The schemes of 2023-2026, each checked in the vision models and by the training probes.</summary>
    public static TheoryData<string> RecentSchemes => new()
    {
        "layernorm-scaling", "mix-ln", "orthogonal", "completep", "laurel", "resi-dual",
        "mhc-lite", "kromhc", "frac-connections", "deep-delta", "attn-res", "admin",
    };

    [Theory]
    [MemberData(nameof(RecentSchemes))]
    public void The_vision_models_take_the_scheme(string scheme)
    {
        foreach (var family in new[] { "resnet", "mlp" })
        {
            manual_seed(1);
            using var model = new VisionConfig(family, family == "mlp" ? 6 : 8, 4, InChannels: 1, ImageSize: 12, Classes: 10)
                .Build(ConnectionCatalog.Create(scheme));
            using var logits = model.call(randn(3, 1, 12, 12));
            Assert.Equal(new long[] { 3, 10 }, logits.shape);
            Assert.True(logits.isfinite().all().item<bool>(), $"{scheme} in {family}");
        }
    }

    sealed class DiagnosticRecorder : ResidualLab.Training.ITrainingObserver
    {
        public List<ResidualLab.Training.Diagnostic> Diagnostics { get; } = [];
        public void OnStep(ResidualLab.Training.StepMetrics step) { }
        public void OnDiagnostic(ResidualLab.Training.Diagnostic diagnostic) => Diagnostics.Add(diagnostic);
    }

    /// <summary>The schemes that need more of the model than the vision models give (<see cref="ModelNeeds"/>): GPT only.</summary>
    public static TheoryData<string> GptOnlySchemes => new() { "ngpt", "mudd", "dca" };

    [Theory]
    [MemberData(nameof(RecentSchemes))]
    [MemberData(nameof(GptOnlySchemes))]
    public void The_training_probes_read_the_scheme(string scheme)
    {
        var config = TestSupport.TinyConfig($"connection.name={scheme}", "model.n_layer=2", "train.max_iters=3", "train.probe_interval=1");
        var recorder = new DiagnosticRecorder();
        var (task, trainer) = TestSupport.GptTrainer(config, TestSupport.TinyCorpus(config.Gpt.Shape.BlockSize));
        trainer.Run(recorder);
        task.Dispose();
        var names = recorder.Diagnostics.Select(d => d.Name).ToHashSet();
        foreach (var name in new[] { "resid_pre_rms", "resid_post_rms", "update_ratio", "resid_pre_grad_norm" })
            Assert.Contains(name, names);
        Assert.Equal(scheme is "mhc-lite" or "kromhc", names.Contains("h_res_gain_fwd"));
        Assert.All(recorder.Diagnostics, d => Assert.True(double.IsFinite(d.Value), $"{d.Name}[{d.Index}] = {d.Value}"));
    }

    [Fact]
    public void Admin_profiles_omega_from_the_first_pass_and_keeps_it()
    {
        manual_seed(5);
        var scheme = new AdminScheme();
        var conns = Enumerable.Range(0, 4).Select(k => (AdminResidual)scheme.Build(new ConnectionSite(16, k, 4, () => nn.LayerNorm(16)))).ToList();
        var weights = Enumerable.Range(0, 4).Select(_ => randn([16, 16]) * 0.5).ToList();
        var x0 = randn([2, 8, 16]) * 0.1;
        List<Tensor> Pass()
        {
            var outputs = new List<Tensor>();
            var pass = new ResidualPass(scheme, x0, sublayerCount: 4);
            for (int k = 0; k < 4; k++)
                pass.Step(conns[k], branch =>
                {
                    var f = branch.Input.matmul(weights[k]).tanh();
                    outputs.Add(f);
                    return f;
                });
            return outputs;
        }
        using var _ = no_grad();
        Assert.All(conns, c => Assert.False(c.IsProfiled));
        var outputs = Pass();
        double accumulated = x0.to(ScalarType.Float64).var().item<double>();
        for (int k = 0; k < 4; k++)
        {
            Assert.True(conns[k].IsProfiled);
            Assert.True((conns[k].Omega - Math.Sqrt(accumulated)).abs().max().item<float>() < 1e-5, $"omega of sublayer {k}");
            accumulated += outputs[k].to(ScalarType.Float64).var().item<double>();
        }
        var profiled = conns.Select(c => c.Omega.clone()).ToList();
        Pass(); // later passes leave omega alone (only training moves it)
        for (int k = 0; k < 4; k++) Assert.Equal(0, (conns[k].Omega - profiled[k]).abs().max().item<float>());
        // The flag travels with the weights: a copy loaded from them does not profile again.
        var copy = (AdminResidual)scheme.Build(new ConnectionSite(16, 1, 4, () => nn.LayerNorm(16)));
        copy.load_state_dict(conns[1].state_dict());
        Assert.True(copy.IsProfiled);
    }

    [Fact]
    public void Admin_with_omega_one_is_post_norm()
    {
        using var postNorm = Model(new PostNormScheme());
        using var admin = Model(new AdminScheme());
        Hidden(admin); // the profiling pass
        CopyShared(postNorm, admin);
        using (no_grad()) foreach (var c in Connections(admin).Cast<AdminResidual>()) c.Omega.fill_(1);
        Assert.True(MaxDiff(Hidden(admin), Hidden(postNorm)) < 1e-12);
    }
}
