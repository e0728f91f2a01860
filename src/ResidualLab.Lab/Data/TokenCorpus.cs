using ResidualLab.Data.Tokenizers;

namespace ResidualLab.Data;

/// <summary>A corpus as token ids, split into training, validation and (where the corpus has one) test.</summary>
/// <param name="Cache">The token cache file the ids are mapped from, with its sha256; null when encoded in memory.</param>
internal sealed record TokenCorpus(string Source, Tokenizer Tokenizer, TokenSequence Train, TokenSequence Val, TokenSequence Test,
    TokenCacheFile? Cache = null)
{
    public int VocabSize => Tokenizer.VocabSize;

    /// <summary>sha256 of the UTF-8 text the tokens came from (<see cref="TextSplits.TextSha256"/>).</summary>
    public string TextSha256 { get; init; } = "";

    public string Decode(IEnumerable<int> ids) => Tokenizer.Decode(ids.ToArray());

    /// <summary>Encodes each document on its own, in memory.</summary>
    public static TokenCorpus Encode(TextSplits splits, Tokenizer tokenizer)
    {
        int[] Split(IReadOnlyList<string> docs) => [.. docs.SelectMany(d => tokenizer.Encode(d, splits.Source))];
        return new TokenCorpus(splits.Source, tokenizer, Split(splits.Train), Split(splits.Val), Split(splits.Test)) { TextSha256 = splits.TextSha256 };
    }

    /// <summary>Throws a one-line error when a split is too short for a window of <paramref name="blockSize"/> tokens.</summary>
    public TokenCorpus CheckFits(int blockSize)
    {
        if (Train.Length <= blockSize + 1 || Val.Length <= blockSize + 1 || (Test.Length > 0 && Test.Length <= blockSize + 1))
            throw new ConfigException(
                $"data '{Source}' has {Train.Length} training, {Val.Length} validation and {Test.Length} test tokens ({Tokenizer.Spec}): too short for block_size {blockSize} (each split needs more than {blockSize + 1}); use a longer text or a smaller model.block_size");
        return this;
    }
}

/// <summary>Character-level corpora in memory (nanoGPT's shakespeare_char): the vocabulary is the text's own characters.</summary>
internal static class CharCorpus
{
    /// <param name="vocabulary">A trained model's vocabulary to encode with; by default the text's own characters.</param>
    /// <param name="testFraction">The end of the text held out for test; 0: no test split.</param>
    public static TokenCorpus FromFile(string path, double valFraction, int blockSize, IReadOnlyList<char>? vocabulary = null, double testFraction = 0) =>
        FromText(TextSplits.ReadUtf8(path), valFraction, blockSize, path, vocabulary, testFraction);

    public static TokenCorpus FromText(string text, double valFraction, int blockSize, string source = "<text>",
        IReadOnlyList<char>? vocabulary = null, double testFraction = 0)
    {
        var splits = TextSplits.ByFraction(text, valFraction, source, "text", testFraction);
        var tokenizer = vocabulary is null ? CharTokenizer.Of([text]) : new CharTokenizer(vocabulary);
        return TokenCorpus.Encode(splits, tokenizer).CheckFits(blockSize);
    }
}
