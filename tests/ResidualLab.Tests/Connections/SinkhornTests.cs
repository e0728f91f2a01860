using ResidualLab.Connections;
using TorchSharp;
using static TorchSharp.torch;

namespace ResidualLab.Tests.Connections;

/// <summary>Sinkhorn-Knopp and the gain of products of residual mixing matrices, in float64.</summary>
[Collection(ConnectionsCollection.Name)]
public class SinkhornTests
{
    const int N = 4;
    const int Layers = 48;

    static (double RowError, double ColumnError) SumErrors(Tensor m) =>
        ((m.sum(-1) - 1).abs().max().item<double>(), (m.sum(-2) - 1).abs().max().item<double>());

    /// <summary>H_res of <paramref name="layers"/> mHC sublayers at init, for <paramref name="tokens"/> random streams each.</summary>
    static List<Tensor> MhcResidualMapsAtInit(int layers, int tokens, double resDiag, int width = 8)
    {
        manual_seed(3);
        var scheme = new ManifoldHyperConnectionsScheme(N, ResDiag: resDiag);
        var maps = new List<Tensor>();
        using var _ = no_grad();
        for (int l = 0; l < layers; l++)
        {
            using var conn = (ManifoldHyperConnections)scheme.Build(new ConnectionSite(width, l, layers, () => nn.LayerNorm(width)));
            conn.to(ScalarType.Float64);
            var stream = randn([tokens, N, width], dtype: ScalarType.Float64);
            maps.Add(conn.Maps(stream).Res);
        }
        return maps;
    }

    [Theory]
    [InlineData(0.0, 1e-5)]
    [InlineData(ManifoldHyperConnectionsScheme.DefaultResDiag, 1e-6)]
    public void At_init_twenty_iterations_are_doubly_stochastic_and_the_product_gain_is_1(double resDiag, double rowTolerance)
    {
        var maps = MhcResidualMapsAtInit(Layers, tokens: 16, resDiag);
        foreach (var m in maps)
        {
            var (rows, columns) = SumErrors(m);
            Assert.True(columns < 1e-12, $"column sums off by {columns}");
            Assert.True(rows < rowTolerance, $"row sums off by {rows}");
            Assert.True(m.min().item<double>() > 0);
        }
        var gain = AmaxGain.OfProduct(maps);
        Assert.InRange(gain.Forward, 0.999, 1.001);
        Assert.InRange(gain.Backward, 0.999, 1.001);
    }

    [Fact]
    public void An_identity_leaning_bias_slows_convergence_at_init()
    {
        var maps = MhcResidualMapsAtInit(8, tokens: 16, resDiag: 4);
        double rows = maps.Max(m => SumErrors(m).RowError);
        Assert.True(maps.Max(m => SumErrors(m).ColumnError) < 1e-12);
        Assert.InRange(rows, 1e-5, 1e-3); // measured ~1e-4: the near-identity matrix contracts slowly
        Assert.True(maps.All(m => m.diagonal(0, -2, -1).min().item<double>() > 0.9));
    }

    [Fact]
    public void Peaked_logits_leave_row_errors_of_a_few_hundredths_after_twenty_iterations()
    {
        manual_seed(7);
        var logits = 3 * randn([Layers, N, N], dtype: ScalarType.Float64);
        var m = Sinkhorn.Project(logits, 20);
        var (rows, columns) = SumErrors(m);
        Assert.True(columns < 1e-12, $"the last step normalises columns: off by {columns}");
        Assert.InRange(rows, 1e-3, 0.1); // approximate: measured a few 1e-2 (notes: up to 3e-2)
        // More iterations converge.
        Assert.True(SumErrors(Sinkhorn.Project(logits, 2000)).RowError < 1e-9);
        // The product of 48 such layers keeps a gain close to 1, unlike unconstrained matrices below.
        var gain = AmaxGain.OfProduct(Enumerable.Range(0, Layers).Select(l => m[l]));
        Assert.InRange(gain.Forward, 0.95, 1.1);
        Assert.InRange(gain.Backward, 0.95, 1.1);
    }

    [Fact]
    public void Unconstrained_hyper_connection_matrices_have_no_such_bound()
    {
        manual_seed(7);
        var layers = Enumerable.Range(0, Layers).Select(_ => eye(N, dtype: ScalarType.Float64) + 0.3 * randn([N, N], dtype: ScalarType.Float64));
        var gain = AmaxGain.OfProduct(layers);
        Assert.True(gain.Forward > 50 && gain.Backward > 50, $"gain {gain}");
    }

    [Fact]
    public void Sinkhorn_is_exact_on_a_doubly_stochastic_start_and_shift_invariant()
    {
        var logits = log(tensor(new[] { 0.7, 0.1, 0.2, 0.2, 0.6, 0.2, 0.1, 0.3, 0.6 }, [3, 3], ScalarType.Float64));
        Assert.True((Sinkhorn.Project(logits, 1) - logits.exp()).abs().max().item<double>() < 1e-15);
        // exp(I) is not the identity: its diagonal is e / (e + n - 1).
        var fromIdentity = Sinkhorn.Project(eye(N, dtype: ScalarType.Float64));
        Assert.Equal(Math.E / (Math.E + N - 1), fromIdentity[0, 0].item<double>(), 12);
        // A per-matrix shift cancels (the maximum is subtracted before exp): huge logits stay finite.
        var shifted = Sinkhorn.Project(logits + 1000);
        Assert.True((shifted - logits.exp()).abs().max().item<double>() < 1e-12);
    }

    [Fact]
    public void Sinkhorn_computes_in_fp32_when_given_half_precision()
    {
        var logits = randn([5, N, N]).to(ScalarType.BFloat16);
        var m = Sinkhorn.Project(logits);
        Assert.Equal(ScalarType.BFloat16, m.dtype);
        var reference = Sinkhorn.Project(logits.to(ScalarType.Float32));
        Assert.True((m.to(ScalarType.Float32) - reference).abs().max().item<float>() < 1e-2);
    }

    [Theory]
    [InlineData(ScalarType.Float64, 1e-13, 1e-12)]
    [InlineData(ScalarType.Float32, 2e-6, 2e-5)]
    public void The_CPU_kernel_equals_the_tensor_definition_in_value_and_gradient(ScalarType dtype, double valueTolerance, double gradientTolerance)
    {
        manual_seed(11);
        // Peaked logits (not yet converged after 20 rounds) and one 3 x 3 batch shape, so every round matters.
        foreach (var shape in new long[][] { [6, 5, N, N], [7, 3, 3] })
        {
            var start = (2 * randn(shape, dtype: ScalarType.Float64)).to(dtype);
            var upstream = randn(shape, dtype: ScalarType.Float64).to(dtype);
            var fused = start.clone().requires_grad_(true);
            var reference = start.clone().requires_grad_(true);
            var fromKernel = Sinkhorn.Project(fused, 20);
            var fromOps = Sinkhorn.ProjectWithTensorOps(reference, 20);
            Assert.True(MaxAbs(fromKernel - fromOps) < valueTolerance);
            (fromKernel * upstream).sum().backward();
            (fromOps * upstream).sum().backward();
            double scale = MaxAbs(reference.grad!);
            Assert.True(scale > 1e-3, "the gradient must not vanish for the comparison to mean anything");
            double error = MaxAbs(fused.grad! - reference.grad!) / scale;
            Assert.True(error < gradientTolerance, $"{dtype} {string.Join("x", shape)}: relative gradient error {error}");
        }
    }

    static double MaxAbs(Tensor t) => t.abs().max().to(ScalarType.Float64).item<double>();

    [Fact]
    public void Amax_gain_is_the_largest_absolute_row_and_column_sum_of_the_product()
    {
        var a = tensor(new[] { 1.0, -2.0, 0.5, 0.0 }, [2, 2], ScalarType.Float64);
        var b = tensor(new[] { 0.0, 1.0, 1.0, 0.0 }, [2, 2], ScalarType.Float64);
        // x2 = b a x0: the product is b @ a = [[0.5, 0], [1, -2]]; rows 0.5, 3; columns 1.5, 2.
        var gain = AmaxGain.OfProduct([a, b]);
        Assert.Equal(3.0, gain.Forward, 12);
        Assert.Equal(2.0, gain.Backward, 12);
    }
}
