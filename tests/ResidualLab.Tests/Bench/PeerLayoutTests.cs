using ResidualLab.Bench;
using ResidualLab.Native;

namespace ResidualLab.Tests.Bench;

public class PeerLayoutTests
{
    static CpuIdentity Cpu(string flags) =>
        CpuIdentity.Parse(["vendor_id\t: AuthenticAMD", "cpu family\t: 26", "model name\t: Test CPU", $"flags\t\t: fpu sse2 {flags}", "", "processor\t: 1"]);

    [Theory]
    [InlineData("avx2 avx512f avx512bw", new[] { "", "SkylakeX", "Haswell" })]
    [InlineData("avx2 fma", new[] { "", "Haswell" })]
    [InlineData("sse4_2", new[] { "" })]
    public void The_openblas_kernels_tried_are_its_own_choice_and_the_newest_the_cpu_runs(string flags, string[] expected) =>
        Assert.Equal(expected, PeerLayout.CoreTypes(Cpu(flags)).Select(core => core ?? ""));

    [Fact]
    public void Two_cores_try_every_pairing_of_one_and_two_threads_with_every_core_type()
    {
        var cpu = Cpu("avx2 avx512f");
        var layouts = PeerLayout.Candidates(2, cpu);
        Assert.Equal(4 * 3, layouts.Count);
        Assert.Equal(layouts.Count, layouts.Distinct().Count());
        Assert.All(layouts, l => Assert.Contains(l.TorchThreads, new[] { 1, 2 }));
        Assert.All(layouts, l => Assert.Contains(l.BlasThreads, new[] { 1, 2 }));
        Assert.Equal(PeerLayout.CoreTypes(cpu).Order(), layouts.Where(l => l is { TorchThreads: 2, BlasThreads: 1 }).Select(l => l.CoreType).Order());
        Assert.Equal(new PeerLayout(1, 1), Assert.Single(PeerLayout.Candidates(1, Cpu("sse4_2"))));
    }

    [Fact]
    public void The_timing_child_sets_blas_threads_and_its_core_type_and_drops_the_workplace_overrides()
    {
        var own = new PeerLayout(2, 1).Environment;
        Assert.Equal("1", own["OPENBLAS_NUM_THREADS"]);
        Assert.Null(own["OPENBLAS_CORETYPE"]);
        Assert.Null(own["OPENBLAS_L2_SIZE"]);
        var skylake = new PeerLayout(2, 2, "SkylakeX");
        Assert.Equal("SkylakeX", skylake.Environment["OPENBLAS_CORETYPE"]);
        Assert.Null(skylake.Environment["OPENBLAS_L2_SIZE"]);
        Assert.Equal("torch 2 x OpenBLAS 2 threads, OpenBLAS SkylakeX kernels", skylake.ToString());
    }

    [Fact]
    public void The_cpu_is_read_from_its_first_processor()
    {
        var cpu = Cpu("avx2 avx512f");
        Assert.Equal(("AuthenticAMD", 26, "Test CPU", true, true), (cpu.Vendor, cpu.Family, cpu.ModelName, cpu.Avx512, cpu.Avx2));
        Assert.Equal("Test CPU, family 26, AVX-512", cpu.Describe());
        Assert.Equal("Test CPU, family 26, AVX2", Cpu("avx2").Describe());
    }
}
