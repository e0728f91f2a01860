using ResidualLab.Connections;
using ResidualLab.Layers;
using ResidualLab.Models;
using TorchSharp;
using static ResidualLab.Tests.Connections.Float64Gpt;
using static TorchSharp.torch;

namespace ResidualLab.Tests.Connections;

/// <summary>MUDD and DeepCrossAttention: separate per-token depth mixtures for the attention's query, key and value.</summary>
[Collection(ConnectionsCollection.Name)]
public class DenseAttentionInputTests
{
    static readonly GptConfig Tiny = new(VocabSize: 13, NLayer: 4, DModel: 16, NHead: 2, BlockSize: 8);

    static Gpt Model(ConnectionScheme scheme) => Float64Gpt.Model(scheme, Tiny);

    static double CompareWithPreNorm(Gpt scheme)
    {
        using var preNorm = Model(new PreNormScheme());
        CopyShared(preNorm, scheme);
        return MaxDiff(Hidden(preNorm), Hidden(scheme));
    }

    /// <summary>Adds noise of std <paramref name="std"/> to the connections' parameters whose names end in one of <paramref name="suffixes"/>.</summary>
    static void Perturb(Gpt model, double std, params string[] suffixes)
    {
        using var _ = no_grad();
        foreach (var (name, p) in model.named_parameters().Where(np => np.name.Contains(".conn_") && suffixes.Any(np.name.EndsWith)))
            p.add_(randn_like(p) * std);
    }

    [Fact]
    public void Mudd_whose_weights_select_the_last_layer_is_pre_norm_and_its_dynamic_weights_are_live()
    {
        using var mudd = Model(new MuddScheme());
        manual_seed(3);
        Perturb(mudd, 0.5, "w1.weight"); // W_2 = 0 and a = (0, ..., 1): the weights select the last layer, whatever W_1
        Assert.True(CompareWithPreNorm(mudd) < 1e-12);
        Perturb(mudd, 0.1, "w2.weight");
        Assert.True(CompareWithPreNorm(mudd) > 1e-3);
    }

    [Fact]
    public void Dca_whose_weights_sum_every_output_is_pre_norm_and_its_dynamic_weights_are_live()
    {
        using var dca = Model(new DeepCrossAttentionScheme());
        Assert.True(CompareWithPreNorm(dca) < 1e-12); // w = 0, b = 1: the plain sum of the outputs is the pre-norm stream
        manual_seed(3);
        Perturb(dca, 0.3, "gate.weight");
        Assert.True(CompareWithPreNorm(dca) > 1e-3);
    }

    [Fact]
    public void Mudd_weights_are_computed_per_token_and_mix_the_layer_outputs_four_ways()
    {
        manual_seed(4);
        var mix = new DenseMix(16, 4, 3, 1);
        mix.to(ScalarType.Float64);
        using var _ = no_grad();
        foreach (var q in mix.parameters()) q.add_(randn_like(q) * 0.3);
        var outputs = Enumerable.Range(0, 3).Select(_ => randn([2, 8, 16], dtype: ScalarType.Float64)).ToList();
        var sums = mix.Mix(outputs);
        var weights = mix.LastWeights!;                                   // [2, 8, 4, 3]
        Assert.Equal(new long[] { 2, 8, 4, 3 }, weights.shape);
        Assert.True((weights - weights[.., ..1]).abs().max().item<double>() > 1e-3, "weights equal at every token");
        // By the definition: A = GELU(RMSNorm(X_2) W_1) W_2 + a, each way's sum_j A[c, j] X_j.
        var p = mix.named_parameters().ToDictionary(np => np.name, np => (Tensor)np.parameter);
        var x = outputs[2];
        var normed = x / (x.square().mean([-1], keepdim: true) + RMSNorm.DefaultEps).sqrt();
        var expected = nn.functional.gelu(normed.matmul(p["w1.weight"].t())).matmul(p["w2.weight"].t()).view(2, 8, 4, 3) + p["bias"];
        Assert.True(MaxDiff(weights, expected) < 1e-12);
        for (int c = 0; c < 4; c++)
        {
            var sum = Enumerable.Range(0, 3).Select(j => expected[.., .., c, j].unsqueeze(-1) * outputs[j]).Aggregate((a, b) => a + b);
            Assert.True(MaxDiff(sums[c], sum) < 1e-12, $"way {c}");
        }
    }

    [Fact]
    public void Dca_weights_are_computed_per_token_from_each_output_and_mix_per_dimension()
    {
        manual_seed(4);
        var mix = new DepthMix(16, 3, 3);
        mix.to(ScalarType.Float64);
        using var _ = no_grad();
        foreach (var q in mix.parameters()) q.add_(randn_like(q) * 0.3);
        var values = Enumerable.Range(0, 3).Select(_ => randn([2, 8, 16], dtype: ScalarType.Float64)).ToList();
        var mixtures = mix.Mix(values);
        var p = mix.named_parameters().ToDictionary(np => np.name, np => (Tensor)np.parameter);
        for (int o = 0; o < 3; o++)
        {
            Tensor expected = zeros_like(values[0]);
            for (int j = 0; j < 3; j++)
            {
                var v = values[j];
                var normed = v / (v.square().mean([-1], keepdim: true) + RMSNorm.DefaultEps).sqrt() * p["key_norm.weight"];
                var scalar = nn.functional.relu(normed.matmul(p["gate.weight"][o])).unsqueeze(-1); // [2, 8, 1]
                Assert.True((scalar - scalar[.., ..1]).abs().max().item<double>() > 1e-3, "weights equal at every token");
                expected = expected + (scalar + p["bias"][o, j]) * v;
            }
            Assert.True(MaxDiff(mixtures[o], expected) < 1e-12, $"output {o}");
        }
    }

    [Theory]
    [InlineData("mudd")]
    [InlineData("dca")]
    public void The_attention_reads_three_different_inputs(string scheme)
    {
        using var model = Model(ConnectionCatalog.Create(scheme));
        manual_seed(6);
        Perturb(model, 0.3, "w2.weight", "gate.weight", "bias");
        using var _ = no_grad();
        var branches = new List<(Connection Connection, Branch Branch)>();
        model.Forward(Tokens(), branches: branches);
        var attention = branches[4].Branch.Attention!; // block 2's attention
        Assert.True(MaxDiff(attention.Query, attention.Key) > 1e-3);
        Assert.True(MaxDiff(attention.Key, attention.Value) > 1e-3);
        Assert.Null(branches[5].Branch.Attention);     // the MLP reads one input
    }

    [Fact]
    public void Separate_attention_inputs_of_equal_value_give_the_fused_attention()
    {
        manual_seed(8);
        var attn = new CausalSelfAttention(16, 2, 0, bias: true, ModelInit.Gpt2, block: 0, sublayers: 2);
        attn.to(ScalarType.Float64);
        attn.eval();
        using var _ = no_grad();
        var x = randn([2, 8, 16], dtype: ScalarType.Float64);
        var fused = attn.call(x, new LayerContext(2));
        var separate = attn.Forward(x, x.clone(), x.clone(), new LayerContext(2));
        Assert.True(MaxDiff(fused, separate) < 1e-12);
    }
}
