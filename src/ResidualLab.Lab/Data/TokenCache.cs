using System.Buffers.Binary;
using System.Diagnostics;
using System.IO.MemoryMappedFiles;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using ResidualLab.Data.Tokenizers;

namespace ResidualLab.Data;

/// <summary>A token cache file a corpus was mapped from, and its sha256 (the run's provenance).</summary>
internal sealed record TokenCacheFile(string Path, string Sha256, int BytesPerToken);

/// <summary>
/// The encoded corpus, written once per (text and split, tokenizer) under <c>$RESLAB_CACHE/tokens/</c> and
/// memory-mapped (nanoGPT's train.bin, with a header). Layout, little endian: 8 bytes "RLTOKENS", u32
/// format version, u32 bytes per token (2: uint16 when the vocabulary fits, else 4), u32 vocabulary size,
/// u32 zero, u64 train/val/test token counts, 16 bytes key (sha256 of the split's key and the tokenizer's
/// id), then the train, val and test ids. The file name carries the key too, so a changed text, split or
/// tokenizer builds a new file and a file is only ever read for the corpus it was built from.
/// </summary>
internal static class TokenCache
{
    const string Magic = "RLTOKENS";
    const int FormatVersion = 1;
    const int HeaderBytes = 64;

    /// <param name="root">The cache folder; by default <see cref="RegistryCorpus.CacheRoot"/>.</param>
    public static string PathFor(TextSplits splits, Tokenizer tokenizer, string? root = null) => Path.Combine(root ?? RegistryCorpus.CacheRoot, "tokens",
        $"{splits.Name}-{tokenizer.Spec.Replace(':', '-')}-{Convert.ToHexStringLower(Key(splits, tokenizer))[..16]}.bin");

    static byte[] Key(TextSplits splits, Tokenizer tokenizer) =>
        SHA256.HashData(Encoding.UTF8.GetBytes($"{splits.Key}|{tokenizer.Id}"))[..16];

    /// <summary>The corpus mapped from its cache file, encoding and writing the file first if there is none.</summary>
    public static TokenCorpus Load(TextSplits splits, Tokenizer tokenizer, string? root = null)
    {
        string path = PathFor(splits, tokenizer, root);
        if (!File.Exists(path)) Build(path, splits, tokenizer);
        return Map(path, splits.Source, tokenizer, Key(splits, tokenizer));
    }

    /// <summary>Encodes every split and writes the cache atomically, with a JSON note of what it holds and how fast it was made.</summary>
    static void Build(string path, TextSplits splits, Tokenizer tokenizer)
    {
        var clock = Stopwatch.StartNew();
        int[] Encode(IReadOnlyList<string> docs) => [.. docs.SelectMany(d => tokenizer.Encode(d, splits.Source))];
        int[][] parts = [Encode(splits.Train), Encode(splits.Val), Encode(splits.Test)];
        double seconds = clock.Elapsed.TotalSeconds;
        int width = tokenizer.VocabSize <= 1 << 16 ? 2 : 4;

        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        string temp = $"{path}.{Guid.NewGuid():N}.tmp";
        using (var file = new FileStream(temp, FileMode.CreateNew, FileAccess.Write))
        {
            var header = new byte[HeaderBytes];
            Encoding.ASCII.GetBytes(Magic).CopyTo(header, 0);
            BinaryPrimitives.WriteUInt32LittleEndian(header.AsSpan(8), FormatVersion);
            BinaryPrimitives.WriteUInt32LittleEndian(header.AsSpan(12), (uint)width);
            BinaryPrimitives.WriteUInt32LittleEndian(header.AsSpan(16), (uint)tokenizer.VocabSize);
            for (int s = 0; s < 3; s++) BinaryPrimitives.WriteUInt64LittleEndian(header.AsSpan(24 + 8 * s), (ulong)parts[s].Length);
            Key(splits, tokenizer).CopyTo(header, 48);
            file.Write(header);
            var buffer = new byte[width * 65536];
            foreach (var part in parts)
                for (int start = 0; start < part.Length; start += 65536)
                {
                    int n = Math.Min(65536, part.Length - start);
                    for (int i = 0; i < n; i++)
                        if (width == 2) BinaryPrimitives.WriteUInt16LittleEndian(buffer.AsSpan(2 * i), (ushort)part[start + i]);
                        else BinaryPrimitives.WriteUInt32LittleEndian(buffer.AsSpan(4 * i), (uint)part[start + i]);
                    file.Write(buffer, 0, n * width);
                }
        }
        long tokens = parts.Sum(p => (long)p.Length);
        File.WriteAllText(Path.ChangeExtension(path, ".json"), JsonSerializer.Serialize(new
        {
            source = splits.Source, text_sha256 = splits.TextSha256, tokenizer = tokenizer.Spec, tokenizer_id = tokenizer.Id,
            vocab_size = tokenizer.VocabSize, bytes_per_token = width,
            train_tokens = parts[0].Length, val_tokens = parts[1].Length, test_tokens = parts[2].Length,
            characters = splits.All.Sum(d => (long)d.Length), encode_seconds = seconds, tokens_per_second = tokens / Math.Max(seconds, 1e-9),
        }));
        File.Move(temp, path, overwrite: true); // atomic: a half-written cache never appears under its name
    }

    static TokenCorpus Map(string path, string source, Tokenizer tokenizer, byte[] key)
    {
        string fix = "delete it and run again to rebuild it";
        var header = new byte[HeaderBytes];
        long length;
        using (var file = File.OpenRead(path))
        {
            length = file.Length;
            if (length < HeaderBytes || file.ReadAtLeast(header, HeaderBytes, throwOnEndOfStream: false) < HeaderBytes
                || Encoding.ASCII.GetString(header, 0, 8) != Magic)
                throw new ConfigException($"token cache '{path}' is not a ResidualLab token file (foreign or damaged); {fix}");
        }
        uint version = BinaryPrimitives.ReadUInt32LittleEndian(header.AsSpan(8));
        int width = (int)BinaryPrimitives.ReadUInt32LittleEndian(header.AsSpan(12));
        if (version != FormatVersion || width is not (2 or 4))
            throw new ConfigException($"token cache '{path}' has format {version} with {width} bytes per token; this version reads format {FormatVersion}; {fix}");
        if (!header.AsSpan(48, 16).SequenceEqual(key) || BinaryPrimitives.ReadUInt32LittleEndian(header.AsSpan(16)) != tokenizer.VocabSize)
            throw new ConfigException($"token cache '{path}' holds the tokens of another text or tokenizer; {fix}");
        var counts = Enumerable.Range(0, 3).Select(s => (long)BinaryPrimitives.ReadUInt64LittleEndian(header.AsSpan(24 + 8 * s))).ToArray();
        long expected = HeaderBytes + width * counts.Sum();
        if (counts.Any(c => c > int.MaxValue) || length != expected)
            throw new ConfigException($"token cache '{path}' is truncated or damaged ({length} bytes, its header says {expected}); {fix}");

        string sha;
        using (var file = File.OpenRead(path)) sha = Convert.ToHexStringLower(SHA256.HashData(file));
        using var mapping = MemoryMappedFile.CreateFromFile(path, FileMode.Open, null, 0, MemoryMappedFileAccess.Read);
        var view = mapping.CreateViewAccessor(0, 0, MemoryMappedFileAccess.Read);
        var splits = new TokenSequence[3];
        unsafe
        {
            byte* start = null;
            view.SafeMemoryMappedViewHandle.AcquirePointer(ref start);
            start += view.PointerOffset + HeaderBytes;
            for (int s = 0; s < 3; s++)
            {
                splits[s] = new MappedTokens(view, start, width, (int)counts[s]);
                start += width * counts[s];
            }
        }
        return new TokenCorpus(source, tokenizer, splits[0], splits[1], splits[2], new TokenCacheFile(path, sha, width));
    }
}
