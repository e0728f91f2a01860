using ResidualLab.Config;
using ResidualLab.Data.Tokenizers;

namespace ResidualLab.Data;

internal static class CorpusLoader
{
    /// <summary>
    /// data.path if given, else the pinned registry corpus data.corpus (fetched and cached), encoded with
    /// data.tokenizer, or with <paramref name="tokenizer"/> (a trained model's), through the token cache.
    /// </summary>
    public static TokenCorpus Load(DataSettings data, int blockSize, Tokenizer? tokenizer = null)
    {
        var splits = Splits(data);
        tokenizer ??= TokenizerFor(data.Tokenizer, splits);
        return (TokenCache.Load(splits, tokenizer) with { TextSha256 = splits.TextSha256 }).CheckFits(blockSize);
    }

    /// <summary>The text of data.path or data.corpus, split as training will see it.</summary>
    public static TextSplits Splits(DataSettings data)
    {
        if (data.Path.Length > 0) return TextSplits.ByFraction(TextSplits.ReadUtf8(data.Path), data.ValFraction, data.Path, "file", data.TestFraction);
        if (data.Corpus == GutenbergCorpus.Name) return GutenbergCorpus.Splits();
        var corpus = RegistryCorpus.Find(data.Corpus);
        string path = RegistryCorpus.Ensure(corpus);
        return TextSplits.ByFraction(TextSplits.ReadUtf8(path), data.ValFraction, path, corpus.Name, data.TestFraction);
    }

    /// <summary>
    /// The tokenizer a data.tokenizer value names for this text: the text's characters, GPT-2's BPE, or a
    /// BPE learned on the training split (learned once, kept in the cache beside the token files).
    /// </summary>
    public static Tokenizer TokenizerFor(string spec, TextSplits splits)
    {
        var parsed = TokenizerSpec.Parse(spec);
        switch (parsed.Kind)
        {
            case TokenizerSpec.Char: return CharTokenizer.Of(splits.All);
            case TokenizerSpec.Gpt2: return Gpt2Tokenizer.Instance;
        }
        string path = Path.Combine(RegistryCorpus.CacheRoot, "tokenizers", $"{splits.Name}-bpe-{parsed.BpeVocabSize}-{splits.Key[..16]}.json");
        if (File.Exists(path)) return TokenizerJson.Parse(File.ReadAllText(path), path);
        var learned = ByteBpeTrainer.Learn(splits.Train, parsed.BpeVocabSize);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        string temp = $"{path}.{Guid.NewGuid():N}.tmp";
        File.WriteAllText(temp, TokenizerJson.Write(learned));
        File.Move(temp, path, overwrite: true);
        return learned;
    }
}
