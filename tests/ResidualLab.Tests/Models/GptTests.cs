using ResidualLab.Connections;
using ResidualLab.Models;
using static TorchSharp.torch;

namespace ResidualLab.Tests.Models;

public class GptTests
{
    [Theory]
    [InlineData("pre-norm")]
    [InlineData("post-norm")]
    [InlineData("none")]
    public void Loss_at_init_is_log_vocab(string scheme)
    {
        var corpus = TestSupport.TinyCorpus();
        manual_seed(3);
        using var model = new Gpt(new GptConfig(corpus.VocabSize, NLayer: 2, DModel: 32, NHead: 2, BlockSize: 16),
            ConnectionCatalog.Create(scheme));
        var batches = new ResidualLab.Data.TokenBatcher(corpus.Train, 16, 16, 1);
        var (x, y) = batches.Next(CPU);
        using var _ = no_grad();
        double loss = model.Loss(x, y).item<float>();
        Assert.InRange(loss, Math.Log(corpus.VocabSize) - 0.1, Math.Log(corpus.VocabSize) + 0.1);
    }

    [Fact]
    public void Logits_have_vocab_width_and_are_causal()
    {
        manual_seed(5);
        using var model = new Gpt(new GptConfig(11, NLayer: 2, DModel: 16, NHead: 2, BlockSize: 8), new PreNormScheme());
        model.eval();
        using var _ = no_grad();
        var idx = tensor(new long[] { 1, 2, 3, 4, 5, 6, 7, 8 }, [1, 8]);
        var changed = tensor(new long[] { 1, 2, 3, 4, 9, 9, 9, 9 }, [1, 8]);
        var a = model.call(idx);
        var b = model.call(changed);
        Assert.Equal(new long[] { 1, 8, 11 }, a.shape);
        // Positions 0..3 see only tokens 0..3, which are equal: their logits must not change.
        Assert.True(a[.., ..4].allclose(b[.., ..4], rtol: 0, atol: 1e-6));
        Assert.False(a[.., 4..].allclose(b[.., 4..], rtol: 0, atol: 1e-3));
    }

    [Fact]
    public void Parameter_count_matches_the_architecture()
    {
        int v = 50, d = 32, l = 3, t = 16;
        using var model = new Gpt(new GptConfig(v, NLayer: l, DModel: d, NHead: 4, BlockSize: t), new PreNormScheme());
        long perBlock = 2 * (2 * d)                    // two LayerNorms (weight + bias)
                        + (d * 3 * d + 3 * d) + (d * d + d) // attention c_attn, c_proj
                        + (d * 4 * d + 4 * d) + (4 * d * d + d); // mlp c_fc, c_proj
        long expected = v * d + t * d + l * perBlock + 2 * d; // tied head; ln_f
        Assert.Equal(expected, model.ParameterCount());
    }
}
