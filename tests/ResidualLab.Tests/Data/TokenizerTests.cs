using ResidualLab.Data.Tokenizers;

namespace ResidualLab.Tests.Data;

public class TokenizerTests
{
    const string Awkward = "naïve café — “quoted” 日本語 🎉👩‍🔬 tabs\tand\r\nlines\n\n  spaces   ";

    [Fact]
    public void Gpt2_gives_the_published_ids()
    {
        var gpt2 = Gpt2Tokenizer.Instance;
        Assert.Equal([15496, 995], gpt2.Encode("Hello world", "test"));
        Assert.Equal([464, 2068, 7586, 21831], gpt2.Encode("The quick brown fox", "test"));
        Assert.Equal(50257, gpt2.VocabSize);
    }

    [Fact]
    public void Gpt2_round_trips_any_utf8()
    {
        var gpt2 = Gpt2Tokenizer.Instance;
        Assert.Equal(Awkward, gpt2.Decode(gpt2.Encode(Awkward, "test")));
    }

    [Fact]
    public void Learned_bpe_is_deterministic_and_independent_of_document_order()
    {
        string[] docs = [TestSupport.TinyText(10), "she sells sea shells by the sea shore\n", "peter piper picked a peck of pickled peppers\n"];
        var a = ByteBpeTrainer.Learn(docs, 320);
        var b = ByteBpeTrainer.Learn(docs.Reverse(), 320);
        Assert.Equal(TokenizerJson.Write(a), TokenizerJson.Write(b));
        Assert.Equal(a.Id, b.Id);
        Assert.Equal(320, a.VocabSize);
        Assert.Equal("bpe:320", a.Spec);
    }

    [Fact]
    public void Learned_bpe_round_trips_text_it_never_saw_and_compresses_text_it_did()
    {
        string text = TestSupport.TinyText(10);
        var bpe = ByteBpeTrainer.Learn([text], 500);
        Assert.Equal(Awkward, bpe.Decode(bpe.Encode(Awkward, "test")));
        var ids = bpe.Encode(text, "test");
        Assert.Equal(text, bpe.Decode(ids));
        Assert.True(ids.Length < text.Length / 3, $"{ids.Length} tokens for {text.Length} characters");
        Assert.All(ids, id => Assert.InRange(id, 0, bpe.VocabSize - 1));
    }

    [Fact]
    public void Merges_apply_lowest_rank_first_to_every_occurrence()
    {
        // 'a' = 97, 'b' = 98: merge 0 makes "ab" (256), merge 1 makes "abab" (257).
        var bpe = new ByteBpeTokenizer([(97, 98), (256, 256)], 258);
        Assert.Equal([257, 256, 97], bpe.Encode("ababab" + "a", "test"));
        Assert.Equal([97, 97], bpe.Encode("aa", "test"));
    }

    [Fact]
    public void A_small_text_stops_learning_when_no_pair_repeats()
    {
        var bpe = ByteBpeTrainer.Learn(["abab"], 1000);
        Assert.Equal(257, bpe.VocabSize); // only "ab" occurs twice
        Assert.Equal("bpe:1000", bpe.Spec);
    }

    [Fact]
    public void Every_tokenizer_survives_its_json()
    {
        var text = TestSupport.TinyText(3);
        Tokenizer[] all = [CharTokenizer.Of([text]), Gpt2Tokenizer.Instance, ByteBpeTrainer.Learn([text], 280)];
        foreach (var t in all)
        {
            var back = TokenizerJson.Parse(TokenizerJson.Write(t), "test");
            Assert.Equal(t.Id, back.Id);
            Assert.Equal(t.Spec, back.Spec);
            Assert.Equal(t.Encode(text, "test"), back.Encode(text, "test"));
        }
    }

    [Theory]
    [InlineData("bpe:12", "[257, 65536]")]
    [InlineData("bpe:x", "[257, 65536]")]
    [InlineData("gtp2", "did you mean 'gpt2'")]
    public void Bad_tokenizer_names_are_one_line_errors(string spec, string expected)
    {
        var ex = Assert.Throws<ConfigException>(() => TestSupport.TinyConfig($"data.tokenizer={spec}"));
        Assert.Contains(expected, ex.Message);
        Assert.Contains("--set data.tokenizer", ex.Message);
        Assert.DoesNotContain('\n', ex.Message);
    }

    [Fact]
    public void The_char_tokenizer_leaves_run_ids_unchanged_and_others_change_them()
    {
        var plain = TestSupport.TinyConfig();
        Assert.DoesNotContain("data.tokenizer", plain.Canonical);
        Assert.Equal(plain.RunId, TestSupport.TinyConfig("data.tokenizer=char").RunId);
        Assert.NotEqual(plain.RunId, TestSupport.TinyConfig("data.tokenizer=gpt2").RunId);
        Assert.NotEqual(TestSupport.TinyConfig("data.tokenizer=bpe:300").RunId, TestSupport.TinyConfig("data.tokenizer=bpe:400").RunId);
    }
}
