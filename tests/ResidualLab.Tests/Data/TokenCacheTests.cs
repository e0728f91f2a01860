using ResidualLab.Data;
using ResidualLab.Data.Tokenizers;

namespace ResidualLab.Tests.Data;

public class TokenCacheTests
{
    static TextSplits Splits(string text) => TextSplits.ByFraction(text, 0.1, "test.txt", "file");

    [Fact]
    public void The_mapped_cache_holds_exactly_the_in_memory_encoding_as_uint16()
    {
        string root = TestSupport.TempDir();
        var splits = Splits(TestSupport.TinyText());
        var bpe = ByteBpeTrainer.Learn(splits.Train, 300);
        var mapped = TokenCache.Load(splits, bpe, root);
        var memory = TokenCorpus.Encode(splits, bpe);
        Assert.Equal(memory.Train.ToArray(), mapped.Train.ToArray());
        Assert.Equal(memory.Val.ToArray(), mapped.Val.ToArray());
        Assert.Equal(0, mapped.Test.Length);
        Assert.Equal(2, mapped.Cache!.BytesPerToken);
        Assert.Equal(64 + 2L * (memory.Train.Length + memory.Val.Length), new FileInfo(mapped.Cache.Path).Length);
        Assert.Equal(RegistryCorpus.Sha256(mapped.Cache.Path), mapped.Cache.Sha256);
    }

    [Fact]
    public void A_cache_is_written_once_and_reused()
    {
        string root = TestSupport.TempDir();
        var splits = Splits(TestSupport.TinyText());
        var tokenizer = CharTokenizer.Of(splits.All);
        var first = TokenCache.Load(splits, tokenizer, root);
        var written = File.GetLastWriteTimeUtc(first.Cache!.Path);
        File.SetLastWriteTimeUtc(first.Cache.Path, written.AddHours(-1));
        var second = TokenCache.Load(splits, tokenizer, root);
        Assert.Equal(first.Cache.Path, second.Cache!.Path);
        Assert.Equal(written.AddHours(-1), File.GetLastWriteTimeUtc(second.Cache.Path)); // not rebuilt
        Assert.Single(Directory.GetFiles(Path.Combine(root, "tokens"), "*.bin"));
    }

    [Fact]
    public void A_changed_text_or_tokenizer_builds_its_own_cache_and_never_reads_another()
    {
        string root = TestSupport.TempDir();
        var text = TestSupport.TinyText();
        var splits = Splits(text);
        var changed = Splits(text.Replace("fox", "cat"));
        var chars = CharTokenizer.Of(splits.All);
        var bpe = ByteBpeTrainer.Learn(splits.Train, 300);

        var a = TokenCache.Load(splits, chars, root);
        var b = TokenCache.Load(changed, CharTokenizer.Of(changed.All), root);
        var c = TokenCache.Load(splits, bpe, root);
        Assert.Equal(3, new[] { a.Cache!.Path, b.Cache!.Path, c.Cache!.Path }.Distinct().Count());
        Assert.Equal(splits.Val[0], a.Decode(a.Val));
        Assert.Equal(changed.Val[0], b.Decode(b.Val));
        Assert.Equal(splits.Val[0], c.Decode(c.Val));

        // Another corpus's file under this corpus's name is refused, not read.
        File.Copy(c.Cache.Path, a.Cache.Path, overwrite: true);
        var ex = Assert.Throws<ConfigException>(() => TokenCache.Load(splits, chars, root));
        Assert.Contains("another text or tokenizer", ex.Message);
    }

    [Fact]
    public void Truncated_and_foreign_cache_files_are_one_line_errors()
    {
        string root = TestSupport.TempDir();
        var splits = Splits(TestSupport.TinyText());
        var tokenizer = CharTokenizer.Of(splits.All);
        string path = TokenCache.Load(splits, tokenizer, root).Cache!.Path;
        var bytes = File.ReadAllBytes(path);

        File.WriteAllBytes(path, bytes[..^3]);
        var truncated = Assert.Throws<ConfigException>(() => TokenCache.Load(splits, tokenizer, root));
        Assert.Contains("truncated", truncated.Message);
        Assert.Contains(path, truncated.Message);
        Assert.Contains("delete it", truncated.Message);

        foreach (var foreign in new[] { "not tokens at all, just some text that is long enough to fill a header"u8.ToArray(), [], bytes[..10] })
        {
            File.WriteAllBytes(path, foreign);
            var ex = Assert.Throws<ConfigException>(() => TokenCache.Load(splits, tokenizer, root));
            Assert.Contains("not a ResidualLab token file", ex.Message);
            Assert.DoesNotContain('\n', ex.Message);
        }
    }

    [Fact]
    public void Batches_read_the_mapped_tokens_as_they_read_an_array()
    {
        string root = TestSupport.TempDir();
        var splits = Splits(TestSupport.TinyText());
        var mapped = TokenCache.Load(splits, CharTokenizer.Of(splits.All), root);
        var a = new TokenBatcher(mapped.Train, 4, 16, 3).NextBatch();
        var b = new TokenBatcher(mapped.Train.ToArray(), 4, 16, 3).NextBatch();
        Assert.Equal(a.Inputs, b.Inputs);
        Assert.Equal(a.Targets, b.Targets);
    }
}
