using ResidualLab.Connections;
using ResidualLab.Hooks;
using ResidualLab.Models;
using static ResidualLab.Tests.Connections.Float64Gpt;
using static TorchSharp.torch;

namespace ResidualLab.Tests.Connections;

/// <summary>The defining property of each stream-mixing scheme of 2025-2026, checked in float64.</summary>
[Collection(ConnectionsCollection.Name)]
public class MultiStreamSchemeTests
{
    static readonly GptConfig Tiny = new(VocabSize: 13, NLayer: 4, DModel: 16, NHead: 2, BlockSize: 8);

    static Gpt Model(ConnectionScheme scheme) => Float64Gpt.Model(scheme, Tiny);

    static IEnumerable<Connection> Connections(Gpt model) =>
        model.Blocks.SelectMany(b => new[] { b.AttentionConnection, b.MlpConnection });

    static ConvexStreamMixing Convex(ConnectionScheme scheme) =>
        (ConvexStreamMixing)scheme.Build(new ConnectionSite(8, 0, 4, () => nn.LayerNorm(8)));

    [Theory]
    [InlineData("mhc-lite", 2, 2)]
    [InlineData("mhc-lite", 4, 24)]
    [InlineData("kromhc", 4, 4)]
    [InlineData("kromhc", 8, 6)]
    public void H_res_is_exactly_doubly_stochastic_for_any_logits(string scheme, int n, int logits)
    {
        using var conn = Convex(ConnectionCatalog.Create(scheme, new Dictionary<string, object> { ["n"] = (long)n }));
        manual_seed(3);
        using var _ = no_grad();
        var maps = Enumerable.Range(0, 48).Select(_ => conn.ResidualMap(randn([5, logits], dtype: ScalarType.Float64) * 4)).ToList();
        foreach (var h in maps)
        {
            Assert.Equal(new long[] { 5, n, n }, h.shape);
            Assert.True(h.min().item<double>() >= 0);
            Assert.True((h.sum(-1) - 1).abs().max().item<double>() < 1e-12, "row sums");
            Assert.True((h.sum(-2) - 1).abs().max().item<double>() < 1e-12, "column sums");
        }
        // The product over 48 layers stays doubly stochastic: Amax gain 1 both ways (Sinkhorn leaves ~1.007).
        var gain = AmaxGain.OfProduct(maps);
        Assert.Equal(1, gain.Forward, 10);
        Assert.Equal(1, gain.Backward, 10);
    }

    [Fact]
    public void Mhc_lite_mixes_the_permutations_by_softmax()
    {
        using var conn = Convex(new MhcLiteScheme(2));
        using var _ = no_grad();
        var h = conn.ResidualMap(tensor(new[] { 0.3, -0.5 }, dtype: ScalarType.Float64));
        double a = 1 / (1 + Math.Exp(-0.8)); // softmax weight of the identity
        Assert.True(MaxDiff(h, tensor(new[] { a, 1 - a, 1 - a, a }, [2, 2], dtype: ScalarType.Float64)) < 1e-12);
        Assert.Equal(24, MhcLite.PermutationMatrices(4).shape[0]);
        Assert.True(MhcLite.PermutationMatrices(4)[0].equal(eye(4)).all().item<bool>()); // the identity first: its init logit
    }

    [Fact]
    public void KromHC_is_the_kronecker_product_of_its_factors()
    {
        using var conn = Convex(new KromHcScheme(4));
        using var _ = no_grad();
        var h = conn.ResidualMap(tensor(new[] { 0.2, -0.4, 1.0, 0.5 }, dtype: ScalarType.Float64));
        static Tensor Factor(double p) => tensor(new[] { p, 1 - p, 1 - p, p }, [2, 2], dtype: ScalarType.Float64);
        var u1 = Factor(1 / (1 + Math.Exp(-0.6)));
        var u2 = Factor(1 / (1 + Math.Exp(-0.5)));
        var kron = (u1.unsqueeze(1).unsqueeze(3) * u2.unsqueeze(0).unsqueeze(2)).reshape(4, 4); // [i k, j l] = u1[i j] u2[k l]
        Assert.True(MaxDiff(h, kron) < 1e-12);
        var ex = Assert.Throws<ArgumentOutOfRangeException>(() => ConnectionCatalog.Create("kromhc", new Dictionary<string, object> { ["n"] = 6L }));
        Assert.Contains("power of two", ex.Message);
    }

    [Theory]
    [InlineData("mhc-lite")]
    [InlineData("kromhc")]
    public void H_res_starts_near_the_identity_and_the_model_trains_its_maps(string scheme)
    {
        using var model = Model(ConnectionCatalog.Create(scheme));
        Hidden(model);
        foreach (var conn in Connections(model).Cast<IStreamMixing>())
        {
            var res = conn.LastMaps!.Res;
            Assert.True(res.diagonal(0, -2, -1).min().item<double>() > 0.99);
        }
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Frac_connections_at_init_compute_the_pre_norm_model_at_the_same_width(bool dynamic)
    {
        using var preNorm = Model(new PreNormScheme());
        using var frac = Model(new FracConnectionsScheme(4, dynamic));
        CopyShared(preNorm, frac);
        var expected = Hidden(preNorm);
        var hidden = Hidden(frac);
        Assert.Equal(expected.shape, hidden.shape);
        Assert.True(MaxDiff(hidden, expected) < 1e-12);
        using (no_grad())
            foreach (var (_, p) in frac.named_parameters().Where(np => np.name.EndsWith("residual"))) p.add_(0.1);
        Assert.True(MaxDiff(Hidden(frac), expected) > 1e-3); // the fractions' mixing is live
        var ex = Assert.Throws<ArgumentException>(() => Model(new FracConnectionsScheme(3)));
        Assert.Contains("must divide the width 16", ex.Message);
    }

    [Fact]
    public void The_delta_shortcut_has_eigenvalues_one_and_one_minus_beta()
    {
        using var model = Model(new DeepDeltaScheme(1.5));
        var conn = (DeepDeltaResidual)model.Blocks[1].AttentionConnection;
        using var _ = no_grad();
        var x = randn([3, 16], dtype: ScalarType.Float64);
        var y = randn([3, 16], dtype: ScalarType.Float64);
        var ctx = new LayerContext(8);
        var next = conn.Combine(y, conn.Prepare(x, ctx), ctx);
        var (k, beta) = conn.LastShortcut!;
        for (int token = 0; token < 3; token++)
        {
            var kt = k[token];
            double b = beta[token].item<double>();
            Assert.InRange(b, 0, 2);
            var a = eye(16, dtype: ScalarType.Float64) - b * kt.outer(kt);
            var eigen = linalg.eigvalsh(a);                                   // ascending
            double norm2 = kt.dot(kt).item<double>();
            Assert.Equal(1, norm2, 8);                                        // k is a unit direction (up to eps)
            Assert.Equal(1 - b * norm2, eigen[0].item<double>(), 10);
            Assert.True((eigen[TensorIndex.Slice(1, null)] - 1).abs().max().item<double>() < 1e-10);
            // The rest of the update is a rank-one write along k: x' - A x = (beta v) k.
            var write = next[token] - a.matmul(x[token]);
            var along = write.dot(kt) * kt;
            Assert.True(MaxDiff(write, along) < 1e-10);
        }
        // beta_init sets the gate's bias: 2 sigmoid(c_b) = beta_init.
        double bias = conn.named_parameters().Single(p => p.name == "gate_bias").parameter.item<double>();
        Assert.Equal(1.5, 2 / (1 + Math.Exp(-bias)), 6);
    }

    [Fact]
    public void Deep_delta_with_beta_zero_is_the_identity()
    {
        using var model = Model(new DeepDeltaScheme(0));
        using var _ = no_grad();
        var embedding = model.Forward(Tokens(), order: []);
        Assert.True(MaxDiff(Hidden(model), embedding) < 1e-4 * embedding.abs().max().item<double>());
    }

    [Theory]
    [InlineData(0)]
    [InlineData(2)]
    public void Attention_residuals_weights_sum_to_one_over_the_earlier_outputs(int blocks)
    {
        using var model = Model(new AttentionResidualsScheme(blocks));
        var conns = Connections(model).Cast<AttentionResiduals>().ToList();
        Hidden(model);
        // Zero pseudo-queries at init: every sublayer reads the plain average of what it attends over.
        foreach (var c in conns)
        {
            var w = c.LastWeights!;
            Assert.True((w - 1.0 / w.shape[^1]).abs().max().item<double>() < 1e-12);
        }

        using (no_grad()) foreach (var (_, p) in model.named_parameters().Where(np => np.name.EndsWith("query"))) p.normal_(0, 1);
        Hidden(model);
        for (int l = 0; l < conns.Count; l++)
        {
            var w = conns[l].LastWeights!;
            int expected = blocks == 0 ? l + 1 : 1 + (l + 3) / 4; // the embedding, completed blocks of 4, the current block's partial sum
            Assert.Equal(expected, (int)w.shape[^1]);
            Assert.True((w.sum(-1) - 1).abs().max().item<double>() < 1e-12);
            Assert.True(w.min().item<double>() >= 0);
        }
    }

    /// <summary>mHC without its per-token term (alpha = 0), so that only the biases' init decides what is read and written.</summary>
    static ConnectionScheme StaticMhc(string init, string write, bool streamEmbed = false) =>
        ConnectionCatalog.Create("mhc", new Dictionary<string, object>
        {
            ["init"] = init, ["write"] = write, ["stream_embed"] = streamEmbed, ["alpha_init"] = 0.0,
        });

    static double ResBiasGradOverPostBiasGrad(Gpt model)
    {
        model.zero_grad();
        model.Forward(Tokens()).square().sum().backward();
        var grads = model.named_parameters().ToList();
        double Norm(string suffix) => Math.Sqrt(grads.Where(p => p.name.EndsWith(suffix)).Sum(p => p.parameter.grad!.square().sum().item<double>()));
        return Norm("b_res") / Norm("b_post");
    }

    [Theory]
    [InlineData("uniform")]
    [InlineData("stream")]
    public void Mhc_streams_written_alike_stay_exact_copies_whatever_they_read(string init)
    {
        // H_post = 1 writes the same to every stream, and a copy satisfies H_res x = x: the streams of every
        // block are copies, the loss sees only H_res's row sums, which Sinkhorn holds at 1, and b_res gets
        // no gradient beyond Sinkhorn's remaining row error.
        using var model = Model(StaticMhc(init, "uniform"));
        using (no_grad())
        {
            var (_, cache) = model.RunWithCache(Tokens());
            for (int b = 0; b < Tiny.NLayer; b++)
                Assert.Equal(1.0, StreamSimilarity.Mean(cache[HookNames.ResidPost(b)]), 12);
        }
        double ratio = ResBiasGradOverPostBiasGrad(model);
        Assert.True(ratio < 1e-5, $"|grad b_res| / |grad b_post| = {ratio}");
    }

    [Fact]
    public void Mhc_stream_write_sends_sublayer_k_to_stream_k_mod_n_and_the_streams_differ_after_one_block()
    {
        using var model = Model(StaticMhc("stream", "stream"));
        double ratio;
        using (no_grad())
        {
            var (_, cache) = model.RunWithCache(Tokens());
            double on = 2 / (1 + Math.Exp(-4)), off = 2 / (1 + Math.Exp(4)); // 2 sigmoid(+-4) = 1.96, 0.036
            var conns = Connections(model).Cast<IStreamMixing>().ToList();
            for (int k = 0; k < conns.Count; k++)
            {
                var expected = full(4, off, dtype: ScalarType.Float64);
                expected[k % 4] = on;
                Assert.True(MaxDiff(conns[k].LastMaps!.Post, expected) < 1e-12, $"H_post of sublayer {k}");
            }
            double cosine = StreamSimilarity.Mean(cache[HookNames.ResidPost(0)]);
            Assert.True(cosine < 0.999, $"stream cosine after block 0: {cosine}");
        }
        ratio = ResBiasGradOverPostBiasGrad(model);
        Assert.True(ratio > 1e-3, $"|grad b_res| / |grad b_post| = {ratio}"); // streams that differ teach H_res
    }

    [Fact]
    public void Mhc_stream_embedding_starts_at_zero_and_its_rows_get_different_gradients()
    {
        using var plain = Model(StaticMhc("stream", "uniform"));
        using var embedded = Model(StaticMhc("stream", "uniform", streamEmbed: true));
        Assert.Equal(plain.parameters().Count(), CopyShared(plain, embedded));
        var embed = embedded.named_parameters().Single(p => p.name.EndsWith("stream_embed")).parameter; // only sublayer 0 owns one
        Assert.Equal(new long[] { 4, Tiny.DModel }, embed.shape);
        Assert.True(MaxDiff(Hidden(embedded), Hidden(plain)) < 1e-12);
        embedded.Forward(Tokens()).square().sum().backward();
        var g = embed.grad!; // [s, d]: row k is stream k's gradient at expansion, summed over tokens
        double rowSpread = (g - g.mean([0], keepdim: true)).abs().max().item<double>();
        Assert.True(rowSpread > 1e-2 * g.abs().max().item<double>(), $"rows differ by {rowSpread}");
    }
}
