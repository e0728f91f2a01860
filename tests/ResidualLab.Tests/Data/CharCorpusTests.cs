using ResidualLab.Data;

namespace ResidualLab.Tests.Data;

public class CharCorpusTests
{
    [Fact]
    public void Vocabulary_is_sorted_distinct_characters_and_split_is_90_10()
    {
        var corpus = CharCorpus.FromText(new string('b', 900) + new string('a', 100), 0.1, 8);
        Assert.Equal(new[] { 'a', 'b' }, ((ResidualLab.Data.Tokenizers.CharTokenizer)corpus.Tokenizer).Vocabulary);
        Assert.Equal(900, corpus.Train.Length);
        Assert.Equal(100, corpus.Val.Length);
        Assert.All(corpus.Train, id => Assert.Equal(1, id));
        Assert.All(corpus.Val, id => Assert.Equal(0, id));
    }

    [Fact]
    public void Text_splits_in_order_into_train_validation_and_test()
    {
        var corpus = CharCorpus.FromText(new string('a', 800) + new string('b', 100) + new string('c', 100), 0.1, 8, testFraction: 0.1);
        Assert.Equal((800, 100, 100), (corpus.Train.Length, corpus.Val.Length, corpus.Test.Length));
        Assert.All(corpus.Train, id => Assert.Equal(0, id));
        Assert.All(corpus.Val, id => Assert.Equal(1, id));
        Assert.All(corpus.Test, id => Assert.Equal(2, id));
        Assert.Contains("sum below 1", Assert.Throws<ConfigException>(() => CharCorpus.FromText(new string('a', 1000), 0.5, 8, testFraction: 0.5)).Message);
    }

    [Fact]
    public void Invalid_utf8_is_a_clear_error()
    {
        string path = Path.Combine(TestSupport.TempDir(), "latin1.txt");
        File.WriteAllBytes(path, [.. "caf"u8.ToArray(), 0xE9, .. " au lait"u8.ToArray()]);
        var ex = Assert.Throws<ConfigException>(() => CharCorpus.FromFile(path, 0.1, 4));
        Assert.Contains("not valid UTF-8", ex.Message);
        Assert.Contains("offset 3", ex.Message);
    }

    [Fact]
    public void Empty_and_too_short_corpora_are_clear_errors()
    {
        Assert.Contains("empty", Assert.Throws<ConfigException>(() => CharCorpus.FromText("", 0.1, 8)).Message);
        Assert.Contains("too short", Assert.Throws<ConfigException>(() => CharCorpus.FromText("hello world", 0.1, 8)).Message);
    }

    [Fact]
    public void Batches_are_shifted_windows_and_reproducible()
    {
        var tokens = Enumerable.Range(0, 1000).ToArray();
        var a = new TokenBatcher(tokens, 4, 10, 42);
        var b = new TokenBatcher(tokens, 4, 10, 42);
        var (x, y) = a.Next(TorchSharp.torch.CPU);
        var (x2, _) = b.Next(TorchSharp.torch.CPU);
        Assert.True(x.eq(x2).all().item<bool>());
        Assert.True((y - x).eq(1).all().item<bool>()); // y is x shifted by one token
    }

    [Fact]
    public void Cached_corpus_with_wrong_hash_is_reported_as_corrupt()
    {
        string cache = TestSupport.TempDir();
        var corpus = RegistryCorpus.MobyDick;
        string file = Path.Combine(cache, "corpora", $"{corpus.Name}-{corpus.Version}.txt");
        Directory.CreateDirectory(Path.GetDirectoryName(file)!);
        File.WriteAllText(file, "not moby dick");
        string? old = Environment.GetEnvironmentVariable("RESLAB_CACHE");
        try
        {
            Environment.SetEnvironmentVariable("RESLAB_CACHE", cache);
            var ex = Assert.Throws<ConfigException>(() => RegistryCorpus.Ensure(corpus));
            Assert.Contains("corrupt", ex.Message);
        }
        finally { Environment.SetEnvironmentVariable("RESLAB_CACHE", old); }
    }
}
