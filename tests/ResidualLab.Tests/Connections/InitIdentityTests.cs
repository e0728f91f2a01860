using ResidualLab.Connections;
using ResidualLab.Hooks;
using ResidualLab.Models;
using static ResidualLab.Tests.Connections.Float64Gpt;
using static TorchSharp.torch;

namespace ResidualLab.Tests.Connections;

/// <summary>What each scheme computes at its initialisation, checked on tiny GPTs in float64.</summary>
[Collection(ConnectionsCollection.Name)]
public class InitIdentityTests
{
    static readonly GptConfig Tiny = new(VocabSize: 13, NLayer: 3, DModel: 16, NHead: 2, BlockSize: 8);

    static Gpt Model(ConnectionScheme scheme, GptConfig? config = null) => Float64Gpt.Model(scheme, config ?? Tiny);

    /// <summary>Copies every parameter <paramref name="target"/> shares by name with <paramref name="source"/>.</summary>
    static void CopyShared(Gpt source, Gpt target)
        // the target has every weight of the source, under the same name
        => Assert.Equal(source.named_parameters().Count(), Float64Gpt.CopyShared(source, target));

    static (Tensor Hidden, List<Tensor> Blocks) Run(Gpt model)
    {
        var blocks = new List<Tensor>();
        using var _ = no_grad();
        var hidden = model.Forward(Tokens(), new HookSet().Add(n => n.EndsWith("hook_resid_post", StringComparison.Ordinal), (_, h) =>
        {
            blocks.Add(h.clone());
            return h;
        }));
        return (hidden, blocks);
    }

    [Theory]
    [InlineData("rezero")]
    [InlineData("skipinit")]
    public void Gated_schemes_are_the_identity_at_init(string scheme)
    {
        using var model = Model(ConnectionCatalog.Create(scheme));
        var (hidden, blocks) = Run(model);
        using var _ = no_grad();
        var named = model.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        var embedding = named["wte.weight"].index_select(0, Tokens().view(-1)).view(2, 8, 16) + named["wpe.weight"];
        Assert.All(blocks, b => Assert.Equal(0, MaxDiff(b, embedding)));
        Assert.Equal(0, MaxDiff(hidden, embedding));
        // ...and not by accident: once the gate opens, the blocks change the stream.
        foreach (var c in model.modules().OfType<Connection>())
            foreach (var p in c.parameters().Where(p => p.numel() == 1)) p.fill_(0.5);
        Assert.True(MaxDiff(Run(model).Hidden, embedding) > 1e-8);
    }

    [Fact]
    public void LayerScale_starts_at_its_init_value_and_scales_the_branch()
    {
        const double init = 1e-3;
        using var model = Model(new LayerScaleScheme(init));
        using var reference = Model(new PreNormScheme());
        CopyShared(reference, model);
        var scales = model.modules().OfType<LayerScaleResidual>().Select(c => c.Scale).ToList();
        Assert.Equal(2 * Tiny.NLayer, scales.Count);
        Assert.All(scales, s => Assert.True(MaxDiff(s, full(Tiny.DModel, init, dtype: ScalarType.Float64)) < 1e-10)); // init in fp32

        // One sublayer by hand: x + init * F(LN(x)).
        var conn = model.Blocks[0].MlpConnection;
        using var _ = no_grad();
        var x = randn([2, 8, 16], dtype: ScalarType.Float64);
        var ctx = new LayerContext(2 * Tiny.NLayer);
        var branch = conn.Prepare(x, ctx);
        var y = randn([2, 8, 16], dtype: ScalarType.Float64);
        Assert.True(MaxDiff(conn.Combine(y, branch, ctx), x + init * y) < 1e-9);
    }

    [Theory]
    [InlineData(1, false)]
    [InlineData(4, false)]
    [InlineData(4, true)]
    public void Hyper_connections_at_init_compute_the_pre_norm_model(int n, bool dynamic)
    {
        using var preNorm = Model(new PreNormScheme());
        using var hc = Model(new HyperConnectionsScheme(n, dynamic));
        CopyShared(preNorm, hc);
        var (expected, expectedBlocks) = Run(preNorm);
        var (hidden, blocks) = Run(hc);
        // Every stream after every block is the pre-norm stream, and the output sums n of them.
        for (int i = 0; i < blocks.Count; i++)
        {
            Assert.Equal(new long[] { 2, 8, n, 16 }, blocks[i].shape);
            for (int s = 0; s < n; s++)
                Assert.True(MaxDiff(blocks[i].select(2, s), expectedBlocks[i]) < 1e-5, $"block {i}, stream {s}");
        }
        Assert.True(MaxDiff(hidden, n * expected) < 1e-5);
        // The weights are live: a changed residual mixing changes the output.
        using (no_grad())
            foreach (var (name, p) in hc.named_parameters().Where(np => np.name.EndsWith("residual")))
                p.add_(0.1);
        if (n > 1) Assert.True(MaxDiff(Run(hc).Hidden, n * expected) > 1e-3);
    }

    [Fact]
    public void DenseFormer_at_init_computes_the_pre_norm_model()
    {
        using var preNorm = Model(new PreNormScheme());
        using var dense = Model(new DenseFormerScheme());
        CopyShared(preNorm, dense);
        var (expected, _) = Run(preNorm);
        Assert.True(MaxDiff(Run(dense).Hidden, expected) < 1e-5);
        // The depth weights are live: giving earlier streams weight changes the output.
        using (no_grad())
            foreach (var (_, p) in dense.named_parameters().Where(np => np.name.EndsWith("weights"))) p.add_(0.1);
        Assert.True(MaxDiff(Run(dense).Hidden, expected) > 1e-3);
    }

    [Theory]
    [InlineData(6)]
    [InlineData(48)]
    public void DeepNorm_uses_the_papers_decoder_only_constants(int layers)
    {
        var config = Tiny with { NLayer = layers, DModel = 8 };
        using var deep = Model(new DeepNormScheme(), config);
        using var reference = Model(new PreNormScheme(), config);
        double alpha = Math.Pow(2.0 * layers, 0.25), beta = Math.Pow(8.0 * layers, -0.25); // Wang et al. 2022, table 1
        var conns = deep.modules().OfType<DeepNormResidual>().ToList();
        Assert.Equal(2 * layers, conns.Count);
        Assert.All(conns, c => { Assert.Equal(alpha, c.Alpha, 12); Assert.Equal(beta, c.Beta, 12); });

        // Same seed, same draws: the value and output projections and the MLP are beta times pre-norm's; q, k are not.
        var d = deep.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        var r = reference.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        foreach (var name in new[] { "h.0.attn.c_proj.weight", "h.0.mlp.c_fc.weight", "h.0.mlp.c_proj.weight" })
            Assert.True(MaxDiff(d[name], beta * r[name]) < 1e-8, name); // scaled in fp32
        long dm = config.DModel;
        var values = TensorIndex.Slice(2 * dm, 3 * dm);
        Assert.True(MaxDiff(d["h.0.attn.c_attn.weight"][values], beta * r["h.0.attn.c_attn.weight"][values]) < 1e-8);
        Assert.Equal(0, MaxDiff(d["h.0.attn.c_attn.weight"][TensorIndex.Slice(0, 2 * dm)], r["h.0.attn.c_attn.weight"][TensorIndex.Slice(0, 2 * dm)]));

        // The depth step by hand: LN(alpha x + y).
        using var _ = no_grad();
        var x = randn([2, 3, 8], dtype: ScalarType.Float64);
        var y = randn([2, 3, 8], dtype: ScalarType.Float64);
        var conn = deep.Blocks[0].AttentionConnection;
        var ctx = new LayerContext(2 * layers);
        var expected = nn.functional.layer_norm(alpha * x + y, [8], eps: 1e-5);
        Assert.True(MaxDiff(conn.Combine(y, conn.Prepare(x, ctx), ctx), expected) < 1e-12);
    }

    [Fact]
    public void Value_residual_mixes_in_the_first_layers_values()
    {
        using var plain = Model(new PreNormScheme());
        using var mixed = Model(new PreNormScheme(), Tiny with { ValueResidual = true });
        CopyShared(plain, mixed);
        var lambdas = mixed.named_parameters().Where(p => p.name.EndsWith("value_lambda")).Select(p => p.parameter).ToList();
        Assert.Equal(Tiny.NLayer - 1, lambdas.Count); // every attention layer but the first
        Assert.All(lambdas, l => Assert.Equal(0.5, l.item<double>()));
        var (expected, _) = Run(plain);
        Assert.True(MaxDiff(Run(mixed).Hidden, expected) > 1e-6);
        // lambda = 1 keeps each layer's own values: the plain model.
        using (no_grad()) foreach (var l in lambdas) l.fill_(1.0);
        Assert.True(MaxDiff(Run(mixed).Hidden, expected) < 1e-12);
    }
}
