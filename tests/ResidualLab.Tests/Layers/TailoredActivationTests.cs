using ResidualLab.Layers;

namespace ResidualLab.Tests.Layers;

/// <summary>
/// TAT's leaky ReLU: the C map against its definition by numerical integration, and the slope solve against dks's own test
/// (google-deepmind/dks, tests/test_activation_transform.py: a ResNet-101 v2 bottleneck network, shortcut weight 0.6,
/// eta = 0.75) and against the chain's composed map.
/// </summary>
public class TailoredActivationTests
{
    /// <summary>E[phi(u) phi(v)] / E[phi(z)^2] for a standard bivariate normal (u, v) of correlation c, phi = max(x, s x),
    /// by the midpoint rule on [-8, 8]^2.</summary>
    static double IntegratedCMap(double c, double slope)
    {
        const double h = 0.01, lim = 8;
        double Phi(double x) => x >= 0 ? x : slope * x;
        double cross = 0, square = 0;
        for (double z1 = -lim + h / 2; z1 < lim; z1 += h)
        {
            double w1 = Math.Exp(-z1 * z1 / 2);
            for (double z2 = -lim + h / 2; z2 < lim; z2 += h)
            {
                double w = w1 * Math.Exp(-z2 * z2 / 2);
                double u = z1, v = c * z1 + Math.Sqrt(1 - c * c) * z2;
                cross += w * Phi(u) * Phi(v);
                square += w * Phi(u) * Phi(u);
            }
        }
        return cross / square;
    }

    [Theory]
    [InlineData(0.0, 0.0)]
    [InlineData(0.5, 0.0)]
    [InlineData(-0.7, 0.0)]
    [InlineData(0.3, 0.24)]
    [InlineData(0.9, 0.6)]
    public void The_c_map_is_the_correlation_of_the_activation_of_correlated_gaussians(double c, double slope)
    {
        double integrated = IntegratedCMap(c, slope), map = TailoredActivation.LeakyReluCMap(c, slope);
        Assert.True(Math.Abs(integrated - map) < 1e-5, $"c = {c}, s = {slope}: integrated {integrated}, C map {map}");
    }

    [Fact]
    public void The_c_map_fixes_one_with_slope_one_and_is_the_identity_for_a_linear_activation()
    {
        foreach (double slope in new[] { 0.0, 0.2, 0.7 })
        {
            Assert.Equal(1, TailoredActivation.LeakyReluCMap(1, slope), 12);
            double derivative = (TailoredActivation.LeakyReluCMap(1, slope) - TailoredActivation.LeakyReluCMap(1 - 1e-7, slope)) / 1e-7;
            Assert.Equal(1, derivative, 3);
            Assert.Equal(1.0, TailoredActivation.OutputScale(slope) * TailoredActivation.OutputScale(slope) * (1 + slope * slope) / 2, 12); // Q(1) = 1
        }
        Assert.Equal(1 / Math.PI, TailoredActivation.LeakyReluCMap(0, 0), 12);
        foreach (double c in new[] { -0.9, 0.0, 0.4 }) Assert.Equal(c, TailoredActivation.LeakyReluCMap(c, 1), 12);
    }

    [Fact]
    public void The_slope_solve_reproduces_dks_own_test()
    {
        // dks's subnetwork maximising function for a ResNet-101 v2 (bottleneck blocks of three non-linear layers, groups of
        // 3, 4, 23 and 3 blocks, the first of each with a projection shortcut r(x)), shortcut weight 0.6: per block
        // x <- 0.36 S + 0.64 R(x), and the result max(r(x), R(x0)).
        static double Resnet101(double x0, Func<double, double> r)
        {
            double R(double z) => r(r(r(z)));
            double x = x0;
            foreach (int blocks in new[] { 3, 4, 23, 3 })
                for (int i = 0; i < blocks; i++) x = 0.36 * (i == 0 ? r(x) : x) + 0.64 * R(x);
            return Math.Max(r(x), R(x0));
        }
        var solved = TailoredActivation.Solve(0.75, Resnet101);
        Assert.True(solved.Reachable);
        Assert.Equal(0.6291800290346146, solved.NegativeSlope, 12);
        Assert.Equal(1.196996549778802, solved.OutputScale, 12);
    }

    [Fact]
    public void A_chain_reaches_eta_where_it_can_and_is_a_scaled_relu_where_it_cannot()
    {
        var deep = TailoredActivation.ForChain(24);
        Assert.True(deep.Reachable);
        double c = 0;
        for (int i = 0; i < 24; i++) c = TailoredActivation.LeakyReluCMap(c, deep.NegativeSlope);
        Assert.Equal(0.9, c, 7);
        Assert.Equal(0.9, deep.C0, 7);
        Assert.InRange(deep.NegativeSlope, 0.01, 0.99);

        var shallow = TailoredActivation.ForChain(6); // even ReLU gives C_6(0) < 0.9
        Assert.False(shallow.Reachable);
        Assert.Equal(0, shallow.NegativeSlope);
        Assert.Equal(Math.Sqrt(2), shallow.OutputScale, 12);
        c = 0;
        for (int i = 0; i < 6; i++) c = TailoredActivation.LeakyReluCMap(c, 0);
        Assert.Equal(c, shallow.C0, 12);
        Assert.True(shallow.C0 < 0.9);
    }

    [Fact]
    public void Eta_outside_zero_to_one_is_refused()
    {
        var ex = Assert.Throws<ArgumentOutOfRangeException>(() => TailoredActivation.ForChain(10, 1.5));
        Assert.Equal("eta", ex.ParamName);
    }
}
