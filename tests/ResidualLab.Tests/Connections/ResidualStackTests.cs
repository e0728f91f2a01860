using ResidualLab.Connections;
using ResidualLab.Hooks;
using TorchSharp;
using static TorchSharp.torch;

namespace ResidualLab.Tests.Connections;

/// <summary>The public wrapper of a user's sublayers: the same math as the lab's own models, and its diagnostics.</summary>
[Collection(ConnectionsCollection.Name)]
public class ResidualStackTests
{
    static ResidualStack Stack(ConnectionScheme scheme, int width = 8, int depth = 3)
    {
        manual_seed(5);
        var stack = new ResidualStack(scheme, width, Enumerable.Range(0, depth).Select(_ => (nn.Module<Tensor, Tensor>)new TinySublayer(width)).ToList());
        stack.to(ScalarType.Float64);
        return stack;
    }

    static Tensor Input(int width = 8) => randn([2, 5, width], ScalarType.Float64, generator: new Generator(9));

    [Fact]
    public void Pre_norm_computes_x_plus_F_of_LN_x_sublayer_by_sublayer()
    {
        using var stack = Stack(ConnectionCatalog.Create("pre-norm"));
        var x = Input();
        using var _ = no_grad();
        var expected = x;
        foreach (var sublayer in stack.Sublayers) // LayerNorm at init: weight 1, bias 0
            expected = expected + sublayer.call(nn.functional.layer_norm(expected, [8]));
        Assert.Equal(0, (stack.call(x) - expected).abs().max().item<double>(), 12);
    }

    [Theory]
    [MemberData(nameof(Schemes.Labels), MemberType = typeof(Schemes))]
    public void Every_scheme_runs_through_the_stack_with_the_shapes_of_its_stream(string label)
    {
        var scheme = Schemes.Get(label);
        if (scheme.Needs != ModelNeeds.None) // more than a stack of any sublayers provides: refused at construction
        {
            Assert.Contains("needs", Assert.Throws<ArgumentException>(() => Stack(scheme)).Message);
            return;
        }
        using var stack = Stack(scheme);
        var x = Input();
        var y = stack.call(x);
        Assert.Equal(x.shape, y.shape);
        y.sum().backward();
        Assert.All(stack.Sublayers, f => Assert.NotNull(f.parameters().First().grad));
        var streams = stack.Trace(x);
        Assert.Equal(4, streams.Count);
        Assert.Equal(scheme.Expand(x).shape, streams[^1].shape);
    }

    [Fact]
    public void Deepnorm_scales_a_scalable_sublayer_at_wrapping()
    {
        manual_seed(5);
        var plain = new TinySublayer(8);
        manual_seed(5);
        var scaled = new TinySublayer(8);
        using var stack = new ResidualStack(new DeepNormScheme(), 8, [scaled, new TinySublayer(8)]);
        double beta = DeepNormScheme.Beta(2);
        var w0 = plain.parameters().First(p => p.dim() == 2);
        var w1 = stack.Sublayers[0].parameters().First(p => p.dim() == 2);
        Assert.Equal(0.0, (double)(w1 - beta * w0).abs().max().item<float>(), 6);
    }

    [Fact]
    public void The_residual_gain_of_mhc_is_one_and_of_single_stream_schemes_absent()
    {
        using var mhc = Stack(ConnectionCatalog.Create("mhc", new Dictionary<string, object> { ["n"] = 4L }), depth: 6);
        var gain = mhc.ResidualGain(Input())!.Value;
        // A product of doubly stochastic matrices is doubly stochastic: every absolute row and column sum is 1.
        Assert.Equal(1, gain.Forward, 4);
        Assert.Equal(1, gain.Backward, 4);
        using var preNorm = Stack(ConnectionCatalog.Create("pre-norm"));
        Assert.Null(preNorm.ResidualGain(Input()));
    }

    [Fact]
    public void Stream_similarity_is_one_for_an_expanded_stream_and_the_mean_pairwise_cosine_otherwise()
    {
        var x = Input();
        Assert.Equal(1, StreamSimilarity.Mean(Streams.Expand(x, 4)), 12);
        var e = eye(3, dtype: ScalarType.Float64);
        Assert.Equal(0, StreamSimilarity.Mean(e), 12);                                       // orthogonal streams
        Assert.Equal(-1, StreamSimilarity.Mean(stack([e[0], -e[0]])), 12);                  // opposite streams
        // three streams: pairs (1, 2) and (1, 3) at cosine 1/sqrt(2), (2, 3) orthogonal.
        var h = tensor(new double[] { 1, 1, 0, 1, 0, 0, 0, 1, 0 }, [3, 3]);
        Assert.Equal(2 / Math.Sqrt(2) / 3, StreamSimilarity.Mean(h), 12);
        var ex = Assert.Throws<ArgumentException>(() => StreamSimilarity.Mean(x.unsqueeze(-2)));
        Assert.Contains("at least 2 streams", ex.Message);
    }

    [Fact]
    public void A_pass_names_the_hook_points_by_layer_and_refuses_a_step_too_many_or_an_early_finish()
    {
        using var residual = new ResidualConnections(new PreNormScheme(), 8, sublayers: 4, sublayersPerLayer: 2);
        residual.to(ScalarType.Float64);
        var seen = new List<string>();
        var hooks = new HookSet().Add(_ => true, (name, x) => { seen.Add(name); return x; });
        var pass = residual.Begin(Input(), hooks);
        for (int k = 0; k < 3; k++) pass.Step(residual[k], b => b.Input, outputHook: $"out{k}");
        Assert.Throws<InvalidOperationException>(() => pass.Finish());
        pass.Step(residual[3], b => b.Input);
        Assert.Throws<InvalidOperationException>(() => pass.Step(residual[3], b => b.Input));
        Assert.Equal(Input().shape, pass.Finish().shape);
        Assert.Equal(["blocks.0.hook_resid_pre", "out0", "blocks.0.hook_resid_mid", "out1", "blocks.0.hook_resid_post",
            "blocks.1.hook_resid_pre", "out2", "blocks.1.hook_resid_mid", "blocks.1.hook_resid_post"], seen);
        Assert.Equal(5, pass.Context.History.Count); // the embedding and the stream after each sublayer
    }

    [Fact]
    public void Schemes_that_feed_an_attention_apart_need_one_to_be_named()
    {
        var refused = Assert.Throws<ArgumentException>(() => new ResidualConnections(new MuddScheme(), 8, sublayers: 4, sublayersPerLayer: 2));
        Assert.Contains("attentionSublayer", refused.Message);
        using var residual = new ResidualConnections(new MuddScheme(), 8, sublayers: 4, sublayersPerLayer: 2, attentionSublayer: 0);
        Assert.Equal(4, residual.Count);
        Assert.Throws<ArgumentException>(() => new ResidualConnections(new NGptScheme(), 8, sublayers: 4, sublayersPerLayer: 2, attentionSublayer: 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => new ResidualConnections(new PreNormScheme(), 0, sublayers: 4));
    }
}
