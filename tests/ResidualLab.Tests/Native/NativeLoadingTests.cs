using static TorchSharp.torch;

namespace ResidualLab.Tests.Native;

public class NativeLoadingTests
{
    [Fact]
    public void Libtorch_loads_and_computes()
    {
        TorchRuntime.EnsureLoaded();
        using var a = ones(3, 4);
        using var b = ones(4, 2);
        using var c = a.matmul(b);
        Assert.Equal(new long[] { 3, 2 }, c.shape);
        Assert.Equal(4f, c[0, 0].item<float>());
    }

    [Fact]
    public void The_app_copy_of_the_library_loads_on_this_host()
    {
        string? lib = TorchRuntime.FindNativeLibrary();
        Assert.NotNull(lib);
        // Either the host has the newer libstdc++, or our copy carries the weak flag.
        Assert.True(TorchRuntime.HostHasGlibcxx(TorchRuntime.MissingGlibcxxVersion)
                    || ElfWeakVersionPatch.IsWeak(lib!, TorchRuntime.MissingGlibcxxVersion));
    }

    [Fact]
    public void Patch_sets_only_the_weak_flag_and_is_idempotent()
    {
        string original = PristineLibrary();
        string copy = Path.Combine(TestSupport.TempDir(), "lib.so");
        File.Copy(original, copy);
        bool wasWeak = ElfWeakVersionPatch.IsWeak(copy, TorchRuntime.MissingGlibcxxVersion);

        var first = ElfWeakVersionPatch.MarkWeak(copy, TorchRuntime.MissingGlibcxxVersion);
        var second = ElfWeakVersionPatch.MarkWeak(copy, TorchRuntime.MissingGlibcxxVersion);

        Assert.Equal(wasWeak ? ElfWeakVersionPatch.Outcome.AlreadyWeak : ElfWeakVersionPatch.Outcome.Patched, first);
        Assert.Equal(ElfWeakVersionPatch.Outcome.AlreadyWeak, second);
        Assert.True(ElfWeakVersionPatch.IsWeak(copy, TorchRuntime.MissingGlibcxxVersion));
        byte[] before = File.ReadAllBytes(original), after = File.ReadAllBytes(copy);
        Assert.Equal(before.Length, after.Length);
        int differing = before.Zip(after).Count(p => p.First != p.Second);
        Assert.True(differing <= 1, $"{differing} bytes changed; the fix is one flag");
    }

    [Fact]
    public void Patchers_running_at_once_all_succeed_and_leave_one_patched_library()
    {
        for (int round = 0; round < 10; round++) // a race: several rounds to give it a chance to show
        {
            string copy = Path.Combine(TestSupport.TempDir(), "lib.so");
            File.Copy(PristineLibrary(), copy);
            Parallel.For(0, 4, new ParallelOptions { MaxDegreeOfParallelism = 4 },
                _ => ElfWeakVersionPatch.MarkWeak(copy, TorchRuntime.MissingGlibcxxVersion));
            Assert.True(ElfWeakVersionPatch.IsWeak(copy, TorchRuntime.MissingGlibcxxVersion));
            Assert.Equal([copy], Directory.GetFiles(Path.GetDirectoryName(copy)!));
        }
    }

    [Fact]
    public void Missing_version_entry_is_a_clear_error()
    {
        var ex = Assert.Throws<InvalidDataException>(() =>
            ElfWeakVersionPatch.MarkWeak(PristineLibrary(), "GLIBCXX_9.9.99"));
        Assert.Contains("GLIBCXX_9.9.99", ex.Message);
        Assert.Contains("re-check", ex.Message);
    }

    [Fact]
    public void Non_elf_file_is_rejected()
    {
        string path = Path.Combine(TestSupport.TempDir(), "not.so");
        File.WriteAllText(path, "this is not an ELF file, just text of some length to pass the size check........");
        var ex = Assert.Throws<InvalidDataException>(() => ElfWeakVersionPatch.MarkWeak(path, "GLIBCXX_3.4.32"));
        Assert.Contains("not an ELF", ex.Message);
    }

    /// <summary>The NuGet cache's untouched copy, or the app's copy when the cache is elsewhere.</summary>
    static string PristineLibrary()
    {
        string home = Environment.GetEnvironmentVariable("NUGET_PACKAGES")
                      ?? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");
        string cached = Path.Combine(home, "torchsharp", "0.107.0", "runtimes", "linux-x64", "native", TorchRuntime.NativeLibraryName);
        return File.Exists(cached) ? cached : TorchRuntime.FindNativeLibrary()!;
    }
}
