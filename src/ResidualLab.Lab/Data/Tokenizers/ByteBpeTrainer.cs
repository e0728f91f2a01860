using System.Text;

namespace ResidualLab.Data.Tokenizers;

/// <summary>
/// Learns a <see cref="ByteBpeTokenizer"/>: count the pieces of the training text (GPT-2's pattern), then
/// repeatedly merge the most frequent adjacent pair. Ties go to the smallest (left, right), so the result
/// depends on the text only: the same text gives the same merges on any machine, in any order of documents.
/// </summary>
internal static class ByteBpeTrainer
{
    public static ByteBpeTokenizer Learn(IEnumerable<string> documents, int vocabSize)
    {
        var counts = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (var text in documents)
            foreach (var match in ByteBpeTokenizer.Pieces().EnumerateMatches(text))
            {
                var piece = text.Substring(match.Index, match.Length);
                counts[piece] = counts.GetValueOrDefault(piece) + 1;
            }
        var words = counts.OrderBy(kv => kv.Key, StringComparer.Ordinal)
            .Select(kv => (Symbols: Encoding.UTF8.GetBytes(kv.Key).Select(b => (int)b).ToList(), Count: kv.Value))
            .ToArray();

        var pairCount = new Dictionary<long, long>();
        var pairWords = new Dictionary<long, HashSet<int>>();
        void Count(int w, int sign)
        {
            var s = words[w].Symbols;
            for (int i = 0; i + 1 < s.Count; i++)
            {
                long key = ByteBpeTokenizer.Key(s[i], s[i + 1]);
                long total = pairCount.GetValueOrDefault(key) + sign * words[w].Count;
                if (total == 0) pairCount.Remove(key);
                else pairCount[key] = total;
                if (sign > 0)
                {
                    if (!pairWords.TryGetValue(key, out var set)) pairWords[key] = set = [];
                    set.Add(w);
                }
            }
        }
        for (int w = 0; w < words.Length; w++) Count(w, +1);

        var merges = new List<(int, int)>(vocabSize - 256);
        while (256 + merges.Count < vocabSize)
        {
            long best = -1, bestCount = 0;
            foreach (var (key, c) in pairCount)
                if (c > bestCount || (c == bestCount && c > 0 && key < best)) (best, bestCount) = (key, c);
            if (bestCount < 2) break; // a pair seen once saves nothing: the text allows no more useful merges
            int left = (int)(best >> 32), right = (int)(best & 0xFFFFFFFF), token = 256 + merges.Count;
            merges.Add((left, right));
            foreach (int w in pairWords[best].Order().ToArray())
            {
                Count(w, -1);
                ByteBpeTokenizer.ApplyMerge(words[w].Symbols, left, right, token);
                Count(w, +1);
            }
            pairCount.Remove(best);
            pairWords.Remove(best);
        }
        return new ByteBpeTokenizer(merges, vocabSize);
    }
}
