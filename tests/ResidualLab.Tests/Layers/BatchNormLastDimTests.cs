using ResidualLab.Layers;
using ResidualLab.Tests.Connections;
using ResidualLab.Tests.Training;
using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace ResidualLab.Tests.Layers;

// Axes: the leading axes of x [b, y, x, c] are the rows the statistics run over; c channels.

[Collection(GlobalTorchStateCollection.Name)]
public class BatchNormLastDimTests
{
    /// <summary>A norm with non-trivial weight and bias (and running statistics) in <paramref name="dtype"/>.</summary>
    static BatchNormLastDim Norm(int c, bool relu, ScalarType dtype = ScalarType.Float64)
    {
        var norm = new BatchNormLastDim(c, relu);
        norm.to(dtype);
        using var _ = no_grad();
        var generator = new Generator(7);
        foreach (var (name, p) in norm.named_parameters())
            p.copy_(name == "weight" ? rand(c, generator: generator) + 0.5 : randn(c, generator: generator));
        foreach (var (name, b) in norm.named_buffers())
            b.copy_(name == "running_var" ? rand(c, generator: generator) + 0.5 : randn(c, generator: generator));
        return norm;
    }

    static Tensor Input(long[] shape, ScalarType dtype = ScalarType.Float64, ulong seed = 1) =>
        (randn(shape, generator: new Generator(seed)) * 2 + 0.5).to(dtype);

    static Tensor Param(BatchNormLastDim norm, string name) => norm.named_parameters().Single(p => p.name == name).parameter;

    static Tensor Buffer(BatchNormLastDim norm, string name) => norm.named_buffers().Single(b => b.name == name).buffer;

    /// <summary>libtorch's batch norm (and ReLU) on the [rows, c] view: the reference.</summary>
    static Tensor Reference(Tensor x, Tensor runningMean, Tensor runningVar, Tensor weight, Tensor bias, bool training, bool relu)
    {
        long c = x.shape[^1];
        var y = F.batch_norm(x.reshape(-1, c), runningMean, runningVar, weight, bias, training, BatchNormLastDim.DefaultMomentum, BatchNormLastDim.Eps).view(x.shape);
        return relu ? F.relu(y) : y;
    }

    [Theory]
    [InlineData(true, false)]
    [InlineData(true, true)]
    [InlineData(false, false)]
    [InlineData(false, true)]
    public void Output_gradients_and_running_statistics_match_libtorchs_batch_norm(bool training, bool relu)
    {
        const int c = 6;
        var norm = Norm(c, relu);
        norm.train(training);
        var w = Param(norm, "weight");
        var b = Param(norm, "bias");
        var (rm, rv) = (Buffer(norm, "running_mean").clone(), Buffer(norm, "running_var").clone());
        var (w2, b2) = (w.detach().clone().requires_grad_(true), b.detach().clone().requires_grad_(true));
        var x = Input([3, 5, 7, c]).requires_grad_(true);
        var x2 = x.detach().clone().requires_grad_(true);
        var upstream = Input([3, 5, 7, c], seed: 2);

        var y = norm.call(x);
        (y * upstream).sum().backward();
        var expected = Reference(x2, rm, rv, w2, b2, training, relu);
        (expected * upstream).sum().backward();

        foreach (var (what, actual, reference) in new[]
                 {
                     ("output", y, expected), ("input gradient", x.grad!, x2.grad!), ("weight gradient", w.grad!, w2.grad!),
                     ("bias gradient", b.grad!, b2.grad!), ("running mean", Buffer(norm, "running_mean"), rm), ("running var", Buffer(norm, "running_var"), rv),
                 })
            Assert.True(allclose(actual, reference, rtol: 1e-10, atol: 1e-12), $"{what}: max difference {(actual - reference).abs().max().item<double>()}");
    }

    [Fact]
    public void Gradients_match_finite_differences()
    {
        const int c = 3;
        var norm = Norm(c, relu: true);
        var x = Input([2, 3, 4, c]).requires_grad_(true);
        var upstream = Input([2, 3, 4, c], seed: 3);
        Tensor Loss() => (norm.call(x) * upstream).sum();
        Loss().backward();
        var w = Param(norm, "weight");
        var b = Param(norm, "bias");
        FiniteDifferences.AssertMatch([("x", x, x.grad!), ("weight", w, w.grad!), ("bias", b, b.grad!)], Loss, samples: 8, "batch norm + ReLU");
    }

    [Theory]
    [InlineData(16)]
    [InlineData(12)]
    [InlineData(5)]
    public void Float32_results_are_the_same_bits_at_one_and_two_threads(int c)
    {
        int threadsBefore = get_num_threads();
        try
        {
            var results = new[] { 1, 2 }.Select(threads =>
            {
                set_num_threads(threads);
                var norm = Norm(c, relu: true, ScalarType.Float32);
                var x = Input([4, 9, 9, c], ScalarType.Float32).requires_grad_(true);  // 324 rows: blocks of 128, 128 and 68
                var y = norm.call(x);
                (y * Input([4, 9, 9, c], ScalarType.Float32, seed: 2)).sum().backward();
                return new[] { y, x.grad!, Param(norm, "weight").grad!, Param(norm, "bias").grad!, Buffer(norm, "running_var") }
                    .Select(t => t.detach().clone()).ToArray();
            }).ToArray();
            for (int i = 0; i < results[0].Length; i++)
                Assert.True(results[0][i].eq(results[1][i]).all().item<bool>(), $"result {i} differs between 1 and 2 threads");
        }
        finally
        {
            set_num_threads(threadsBefore);
        }
    }

    [Fact]
    public void A_non_finite_input_makes_its_channel_non_finite_through_the_relu()
    {
        var norm = Norm(4, relu: true);
        var x = Input([2, 3, 3, 4]);
        x[0, 1, 2, 1] = tensor(double.NaN);
        var y = norm.call(x);
        Assert.True(y[.., .., .., 1].isnan().all().item<bool>());
        Assert.True(y[.., .., .., 0].isfinite().all().item<bool>());
    }
}
