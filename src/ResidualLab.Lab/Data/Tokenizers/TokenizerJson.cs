using System.Text.Json;
using System.Text.Json.Nodes;
using ResidualLab.Checkpoints;

namespace ResidualLab.Data.Tokenizers;

/// <summary>
/// A tokenizer as JSON, saved with each run and in exported checkpoints. The character tokenizer keeps
/// the format runs have always written (<see cref="VocabularyJson"/>: an array of code units); the others
/// are objects: <c>{"kind":"gpt2"}</c>, or <c>{"kind":"bpe","vocab_size":N,"pattern":...,"merges":[[l,r],...]}</c>.
/// </summary>
internal static class TokenizerJson
{
    /// <summary>The file in a run folder: vocabulary.json for characters, tokenizer.json otherwise.</summary>
    public static string RunFileName(Tokenizer tokenizer) => tokenizer is CharTokenizer ? VocabularyJson.RunFileName : TokenizerRunFile;

    public const string TokenizerRunFile = "tokenizer.json";

    public static string Write(Tokenizer tokenizer) => tokenizer switch
    {
        CharTokenizer c => VocabularyJson.Write(c.Vocabulary),
        Gpt2Tokenizer => JsonSerializer.Serialize(new { kind = TokenizerSpec.Gpt2 }),
        ByteBpeTokenizer b => JsonSerializer.Serialize(new
        {
            kind = TokenizerSpec.Bpe, vocab_size = b.RequestedSize, pattern = ByteBpeTokenizer.Pattern,
            merges = b.Merges.Select(m => new[] { m.Left, m.Right }),
        }),
        _ => throw new ArgumentOutOfRangeException(nameof(tokenizer)),
    };

    /// <param name="source">Names where the text came from, for error messages.</param>
    public static Tokenizer Parse(string json, string source)
    {
        if (json.TrimStart().StartsWith('[')) return new CharTokenizer(VocabularyJson.Parse(json, source));
        JsonObject? obj;
        try { obj = JsonNode.Parse(json) as JsonObject; }
        catch (JsonException) { obj = null; }
        string? kind = obj?["kind"]?.GetValue<string>();
        switch (kind)
        {
            case TokenizerSpec.Gpt2:
                return Gpt2Tokenizer.Instance;
            case TokenizerSpec.Bpe:
                if (obj!["pattern"]?.GetValue<string>() != ByteBpeTokenizer.Pattern)
                    throw new ConfigException($"{source}: the BPE tokenizer was learned with another pre-tokenisation pattern than this version uses");
                try
                {
                    var merges = obj["merges"]!.AsArray().Select(m => (m![0]!.GetValue<int>(), m[1]!.GetValue<int>())).ToList();
                    return new ByteBpeTokenizer(merges, obj["vocab_size"]!.GetValue<int>());
                }
                catch (Exception ex) when (ex is NullReferenceException or InvalidOperationException or FormatException or ArgumentOutOfRangeException)
                {
                    throw new ConfigException($"{source}: the BPE tokenizer's merges are not a list of [left, right] token pairs");
                }
            default:
                throw new ConfigException($"{source}: not a tokenizer (expected a vocabulary array, or an object with kind gpt2 or bpe)");
        }
    }
}
