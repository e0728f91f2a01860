using CsCheck;
using ResidualLab.Config;
using ResidualLab.Data;

namespace ResidualLab.Tests.Config;

/// <summary>Random and mutated inputs: the parsers either accept or say why, and never throw anything else.</summary>
public class ConfigPropertyTests
{
    const string Valid = """
        [model]
        n_layer = 2
        d_model = 64
        n_head = 4
        dropout = 0.1
        [connection]
        name = "post-norm"
        [train]
        lr = 0.002
        seed = 7
        device = "cpu"
        """;

    static void OnlyConfigErrors(Action parse)
    {
        try { parse(); }
        catch (ConfigException) { }
    }

    [Fact]
    public void Random_text_as_toml_never_throws_anything_but_a_config_error() =>
        Gen.String.Sample(text => OnlyConfigErrors(() => RunConfig.From(Merge(text))), iter: 2000);

    [Fact]
    public void Mutated_valid_toml_never_throws_anything_but_a_config_error()
    {
        var mutation = Gen.Select(Gen.Int[0, Valid.Length - 1], Gen.Int[0, 3], Gen.Char[' ', '~']);
        mutation.Array[1, 6].Sample(edits =>
        {
            var text = new System.Text.StringBuilder(Valid);
            foreach (var (pos, kind, ch) in edits)
            {
                int at = Math.Min(pos, Math.Max(0, text.Length - 1));
                switch (kind)
                {
                    case 0 when text.Length > 0: text.Remove(at, 1); break;
                    case 1: text.Insert(at, ch); break;
                    case 2 when text.Length > 0: text[at] = ch; break;
                    default: text.Insert(at, "\n" + ch + " = " + ch + "\n"); break;
                }
            }
            OnlyConfigErrors(() => RunConfig.From(Merge(text.ToString())));
        }, iter: 2000);
    }

    [Fact]
    public void Random_overrides_never_throw_anything_but_a_config_error()
    {
        var key = Gen.OneOf(ConfigSchema.Keys.Select(k => k.Key).Concat(["connection.norm", "model", "x.y", ""]).ToArray());
        Gen.Select(key, Gen.String).Sample((k, value) => OnlyConfigErrors(() =>
        {
            var v = new ConfigValues();
            v.Override($"{k}={value}");
            RunConfig.From(v);
        }), iter: 2000);
    }

    [Fact]
    public void Canonical_text_round_trips_to_the_same_run()
    {
        Gen.Select(Gen.Int[1, 12], Gen.OneOf(new[] { "none", "pre-norm", "post-norm" }), Gen.Double[1e-5, 1], Gen.Long, Gen.Bool)
            .Sample((layers, scheme, lr, seed, bias) =>
            {
                var v = new ConfigValues();
                v.Override($"model.n_layer={layers}");
                v.Override($"connection.name={scheme}");
                v.Set("train.lr", lr, "test");
                v.Set("train.seed", seed, "test");
                v.Set("model.bias", bias, "test");
                var config = RunConfig.From(v);
                var back = RunConfig.From(ConfigValues.FromCanonical(config.FullText, "config.txt"));
                Assert.Equal(config.RunId, back.RunId);
                Assert.Equal(config.Canonical, back.Canonical);
            }, iter: 300);
    }

    [Fact]
    public void Random_bytes_as_a_corpus_are_read_or_refused_clearly()
    {
        string dir = TestSupport.TempDir();
        Gen.Byte.Array[0, 400].Sample(bytes =>
        {
            string path = Path.Combine(dir, "corpus.txt");
            File.WriteAllBytes(path, bytes);
            OnlyConfigErrors(() =>
            {
                var corpus = CharCorpus.FromFile(path, 0.1, 8);
                Assert.Equal(corpus.Train.Length + corpus.Val.Length, corpus.Decode(corpus.Train.Concat(corpus.Val)).Length);
            });
        }, iter: 1000, threads: 1);
    }

    static ConfigValues Merge(string text)
    {
        var v = new ConfigValues();
        v.MergeToml(text, "random.toml");
        return v;
    }
}
