namespace ResidualLab.Data.Tokenizers;

/// <summary>
/// One token per UTF-16 code unit; the vocabulary is the sorted set of the text's code units
/// (nanoGPT's shakespeare_char).
/// </summary>
internal sealed class CharTokenizer : Tokenizer
{
    readonly Dictionary<char, int> _index;

    public IReadOnlyList<char> Vocabulary { get; }

    public CharTokenizer(IReadOnlyList<char> vocabulary)
    {
        Vocabulary = vocabulary;
        _index = new Dictionary<char, int>(vocabulary.Count);
        for (int i = 0; i < vocabulary.Count; i++) _index[vocabulary[i]] = i;
    }

    /// <summary>The vocabulary of all of <paramref name="texts"/>: every code unit they use, sorted.</summary>
    public static CharTokenizer Of(IEnumerable<string> texts)
    {
        var seen = new HashSet<char>();
        foreach (var text in texts) seen.UnionWith(text);
        return new CharTokenizer(seen.Order().ToArray());
    }

    public override string Spec => TokenizerSpec.Char;
    public override int VocabSize => Vocabulary.Count;

    public override int[] Encode(string text, string source)
    {
        var ids = new int[text.Length];
        for (int i = 0; i < text.Length; i++)
            ids[i] = _index.TryGetValue(text[i], out int id) ? id : throw new ConfigException(
                $"data '{source}' has the character U+{(int)text[i]:X4}{(char.IsControl(text[i]) || char.IsSurrogate(text[i]) ? "" : $" '{text[i]}'")} at offset {i}, which the model's vocabulary of {Vocabulary.Count} characters lacks; give text made of the training characters");
        return ids;
    }

    public override string Decode(IReadOnlyList<int> ids) => new(ids.Select(i => Vocabulary[i]).ToArray());
}
