using System.Diagnostics;
using ResidualLab.Processes;

namespace ResidualLab.Tests.Packaging;

/// <summary>
/// The library as a user gets it: pack it into a folder feed, build the examples (Spirals, CopyTransformer) against
/// that package (not the project), and train a few steps. Everything goes to a temporary folder, with its
/// own NuGet package folder, so the package just packed is the one used (never a cached one).
/// </summary>
[Trait(Slow.Category, Slow.Value)]
public class PackedExampleTests
{
    [Fact]
    public void The_examples_build_against_the_freshly_packed_library_and_train()
    {
        string repo = TestSupport.RepoRoot();
        string work = TestSupport.TempDir();
        string feed = Path.Combine(work, "feed");
        string suffix = $"test.{DateTime.UtcNow:yyyyMMddHHmmss}";
        string version = $"{BuildInfo.Version}-{suffix}";

        Dotnet(repo, "pack", "src/ResidualLab/ResidualLab.csproj", "-c", "Release", "--version-suffix", suffix,
            "--artifacts-path", Path.Combine(work, "build"), "-o", feed);
        Assert.True(File.Exists(Path.Combine(feed, $"ResidualLab.{version}.nupkg")));

        Dotnet(repo, "build", "examples/Spirals", "-c", "Release", "--artifacts-path", Path.Combine(work, "example"),
            $"-p:ResidualLabVersion={version}", $"-p:RestoreAdditionalProjectSources={feed}",
            $"-p:RestorePackagesPath={Path.Combine(work, "packages")}", $"-p:RestoreFallbackFolders={GlobalPackages()}");
        string bin = Path.GetDirectoryName(Directory.EnumerateFiles(Path.Combine(work, "example", "bin"), "Spirals.dll", SearchOption.AllDirectories).Single())!;
        Assert.StartsWith(version, FileVersionInfo.GetVersionInfo(Path.Combine(bin, "ResidualLab.dll")).ProductVersion);

        var run = Dotnet(bin, Path.Combine(bin, "Spirals.dll"), "mhc", "n=2", "--steps", "6", "--depth", "2");
        Assert.Contains("step    6  loss", run);
        Assert.Contains("mhc: 2 stream(s), 2 sublayers", run);
        Assert.Contains("Amax gain of the residual mixing", run);
        var (exit, error) = Run(bin, Path.Combine(bin, "Spirals.dll"), "mhcc");
        Assert.Equal(2, exit);
        Assert.Single(error.Trim().Split('\n'));
        Assert.StartsWith("Spirals: error: unknown connection scheme 'mhcc' (did you mean 'mhc'?)", error);

        // A user's own Transformer block, its attention taking a mask, wired by a typed scheme through ResidualConnections.
        Dotnet(repo, "build", "examples/CopyTransformer", "-c", "Release", "--artifacts-path", Path.Combine(work, "example2"),
            $"-p:ResidualLabVersion={version}", $"-p:RestoreAdditionalProjectSources={feed}",
            $"-p:RestorePackagesPath={Path.Combine(work, "packages")}", $"-p:RestoreFallbackFolders={GlobalPackages()}");
        string bin2 = Path.GetDirectoryName(Directory.EnumerateFiles(Path.Combine(work, "example2", "bin"), "CopyTransformer.dll", SearchOption.AllDirectories).Single())!;
        var copy = Dotnet(bin2, Path.Combine(bin2, "CopyTransformer.dll"), "--steps", "4");
        Assert.Contains("mhc step    4  loss", copy);
        var (refusedExit, refused) = Run(bin2, Path.Combine(bin2, "CopyTransformer.dll"), "ngpt");
        Assert.Equal(2, refusedExit);
        Assert.StartsWith("CopyTransformer: error: scheme 'ngpt' needs unit-norm weight matrices", refused.Trim());

        // The library's load fix ran on the example's own copy of the native library.
        string native = Directory.EnumerateFiles(bin, TorchRuntime.NativeLibraryName, SearchOption.AllDirectories).Single();
        if (!TorchRuntime.HostHasGlibcxx(TorchRuntime.MissingGlibcxxVersion))
            Assert.True(ElfWeakVersionPatch.IsWeak(native, TorchRuntime.MissingGlibcxxVersion));
    }

    static string GlobalPackages() =>
        Environment.GetEnvironmentVariable("NUGET_PACKAGES") is { Length: > 0 } p
            ? p
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");

    /// <summary>Runs dotnet with <paramref name="args"/> in <paramref name="dir"/>; its output, or a failure that shows it.</summary>
    static string Dotnet(string dir, params string[] args)
    {
        var (exit, output) = Run(dir, args);
        Assert.True(exit == 0, $"dotnet {string.Join(' ', args)} exited with {exit}:\n{output}");
        return output;
    }

    static (int ExitCode, string Output) Run(string dir, params string[] args)
    {
        // The test host's MSBuild settings must not leak into a separate build.
        var environment = Environment.GetEnvironmentVariables().Keys.Cast<string>()
            .Where(k => k.StartsWith("MSBuild", StringComparison.OrdinalIgnoreCase))
            .Select(k => KeyValuePair.Create(k, (string?)null))
            .Append(KeyValuePair.Create("DOTNET_CLI_TELEMETRY_OPTOUT", (string?)"1"))
            .Append(KeyValuePair.Create("DOTNET_NOLOGO", (string?)"1"));
        var dotnet = ChildProcess.Run("dotnet", args, TimeSpan.FromMinutes(15), environment, workingDirectory: dir);
        if (dotnet.TimedOut) throw new TimeoutException($"dotnet {string.Join(' ', args)} ran over 15 minutes");
        return (dotnet.ExitCode, dotnet.StdOut + dotnet.StdErr);
    }
}
