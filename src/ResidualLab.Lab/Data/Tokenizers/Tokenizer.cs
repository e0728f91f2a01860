using System.Security.Cryptography;
using System.Text;

namespace ResidualLab.Data.Tokenizers;

/// <summary>
/// Text to token ids and back. Every tokenizer has a JSON description (<see cref="TokenizerJson"/>) that
/// rebuilds it exactly; its <see cref="Id"/> (a hash of that JSON) names the token caches it wrote.
/// </summary>
internal abstract class Tokenizer
{
    /// <summary>The data.tokenizer value that asks for this kind: "char", "gpt2" or "bpe:N".</summary>
    public abstract string Spec { get; }

    public abstract int VocabSize { get; }

    /// <param name="source">Names the text in error messages.</param>
    public abstract int[] Encode(string text, string source);

    public abstract string Decode(IReadOnlyList<int> ids);

    /// <summary>First 16 hex digits of the sha256 of the tokenizer's JSON: equal ids, equal encodings.</summary>
    public string Id => _id ??= Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(TokenizerJson.Write(this))))[..16];
    string? _id;
}

/// <summary>A parsed data.tokenizer value.</summary>
/// <param name="BpeVocabSize">For "bpe:N", N (256 byte tokens plus N - 256 learned merges); 0 otherwise.</param>
internal sealed record TokenizerSpec(string Kind, int BpeVocabSize)
{
    public const string Char = "char";
    public const string Gpt2 = "gpt2";
    public const string Bpe = "bpe";

    /// <summary>Largest learned vocabulary: token ids stay within uint16 in the token cache.</summary>
    public const int MaxBpeVocabSize = 65536;

    public static TokenizerSpec Parse(string text)
    {
        if (text == Char) return new(Char, 0);
        if (text == Gpt2) return new(Gpt2, 0);
        if (text.StartsWith("bpe:", StringComparison.Ordinal))
        {
            if (int.TryParse(text.AsSpan(4), out int n) && n is > 256 and <= MaxBpeVocabSize) return new(Bpe, n);
            throw new ConfigException($"'data.tokenizer' = \"{text}\": N in bpe:N must be an integer in [257, {MaxBpeVocabSize}] (256 byte tokens plus the merges learned), e.g. bpe:4096");
        }
        throw new ConfigException($"'data.tokenizer' must be char, gpt2 or bpe:N (e.g. bpe:4096), got \"{text}\"{Suggest.DidYouMean(text, [Char, Gpt2, "bpe:4096"])}");
    }
}
