using ResidualLab.Bench;

namespace ResidualLab.Tests.Bench;

public class PeerLayoutTests
{
    [Fact]
    public void Two_cores_try_every_pairing_of_one_and_two_threads()
    {
        var layouts = PeerLayout.Candidates(2);
        Assert.Equal(4, layouts.Count);
        Assert.Equal(4, layouts.Distinct().Count());
        Assert.All(layouts, l => Assert.Contains(l.TorchThreads, new[] { 1, 2 }));
        Assert.All(layouts, l => Assert.Contains(l.BlasThreads, new[] { 1, 2 }));
        Assert.Equal(new PeerLayout(1, 1), Assert.Single(PeerLayout.Candidates(1)));
    }

    [Fact]
    public void The_timing_child_sets_blas_threads_and_drops_the_core_type_override()
    {
        var env = new PeerLayout(2, 1).Environment;
        Assert.Equal("1", env["OPENBLAS_NUM_THREADS"]);
        Assert.Null(env["OPENBLAS_CORETYPE"]);
        Assert.Null(env["OPENBLAS_L2_SIZE"]);
    }
}
