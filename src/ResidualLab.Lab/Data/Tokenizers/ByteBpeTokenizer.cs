using System.Text;
using System.Text.RegularExpressions;

namespace ResidualLab.Data.Tokenizers;

/// <summary>
/// A byte-level BPE learned from the training split (Sennrich et al. 2016, arXiv:1508.07909; GPT-2's byte
/// variant). Token ids 0-255 are the bytes of UTF-8; merge k joins two tokens into token 256 + k. Text is
/// first split with GPT-2's pattern, then each piece's bytes are merged lowest rank first, every
/// occurrence of a pair left to right, as in training. Any string round-trips.
/// </summary>
internal sealed partial class ByteBpeTokenizer : Tokenizer
{
    /// <summary>GPT-2's pre-tokenisation pattern (openai/gpt-2 encoder.py).</summary>
    public const string Pattern = @"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

    [GeneratedRegex(Pattern)]
    internal static partial Regex Pieces();

    readonly Dictionary<long, int> _rank = [];
    readonly byte[][] _bytes;
    readonly Dictionary<string, int[]> _pieceCache = new(StringComparer.Ordinal);

    /// <summary>The learned merges in order: merge k makes token 256 + k from (Left, Right).</summary>
    public IReadOnlyList<(int Left, int Right)> Merges { get; }

    /// <summary>The vocabulary size asked for (bpe:N); a small text may allow fewer merges.</summary>
    public int RequestedSize { get; }

    public ByteBpeTokenizer(IReadOnlyList<(int Left, int Right)> merges, int requestedSize)
    {
        Merges = merges;
        RequestedSize = requestedSize;
        _bytes = new byte[256 + merges.Count][];
        for (int b = 0; b < 256; b++) _bytes[b] = [(byte)b];
        for (int k = 0; k < merges.Count; k++)
        {
            var (l, r) = merges[k];
            if (l < 0 || r < 0 || l >= 256 + k || r >= 256 + k)
                throw new ConfigException($"BPE merge {k} ({l}, {r}) refers to a token not made yet; the tokenizer file is damaged");
            _rank[Key(l, r)] = k;
            _bytes[256 + k] = [.. _bytes[l], .. _bytes[r]];
        }
    }

    internal static long Key(int left, int right) => ((long)left << 32) | (uint)right;

    public override string Spec => $"bpe:{RequestedSize}";
    public override int VocabSize => 256 + Merges.Count;

    public override int[] Encode(string text, string source)
    {
        var ids = new List<int>(text.Length / 3);
        foreach (var match in Pieces().EnumerateMatches(text))
        {
            var piece = text.Substring(match.Index, match.Length);
            if (!_pieceCache.TryGetValue(piece, out var tokens))
                _pieceCache[piece] = tokens = EncodePiece(Encoding.UTF8.GetBytes(piece));
            ids.AddRange(tokens);
        }
        return [.. ids];
    }

    int[] EncodePiece(byte[] bytes)
    {
        var symbols = new List<int>(bytes.Length);
        foreach (var b in bytes) symbols.Add(b);
        while (symbols.Count > 1)
        {
            int best = int.MaxValue;
            for (int i = 0; i + 1 < symbols.Count; i++)
                if (_rank.TryGetValue(Key(symbols[i], symbols[i + 1]), out int r) && r < best) best = r;
            if (best == int.MaxValue) break;
            var (l, rr) = Merges[best];
            ApplyMerge(symbols, l, rr, 256 + best);
        }
        return [.. symbols];
    }

    /// <summary>Replaces every (left, right) in <paramref name="symbols"/>, left to right, by <paramref name="token"/>.</summary>
    internal static void ApplyMerge(List<int> symbols, int left, int right, int token)
    {
        int write = 0;
        for (int read = 0; read < symbols.Count; read++)
        {
            if (read + 1 < symbols.Count && symbols[read] == left && symbols[read + 1] == right)
            {
                symbols[write++] = token;
                read++;
            }
            else symbols[write++] = symbols[read];
        }
        symbols.RemoveRange(write, symbols.Count - write);
    }

    /// <summary>The tokens' bytes as UTF-8; a cut multi-byte character becomes U+FFFD.</summary>
    public override string Decode(IReadOnlyList<int> ids)
    {
        var bytes = new List<byte>(ids.Count * 3);
        foreach (int id in ids) bytes.AddRange(_bytes[id]);
        return Encoding.UTF8.GetString(bytes.ToArray());
    }
}
