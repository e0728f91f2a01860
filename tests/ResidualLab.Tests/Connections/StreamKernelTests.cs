using ResidualLab.Connections;
using TorchSharp;
using static TorchSharp.torch;

namespace ResidualLab.Tests.Connections;

/// <summary>The CPU kernels of the n-stream residual equal their tensor-operation definitions, values and gradients.</summary>
[Collection(ConnectionsCollection.Name)]
public class StreamKernelTests
{
    static double MaxAbs(Tensor t) => t.abs().max().to(ScalarType.Float64).item<double>();

    /// <summary>Runs <paramref name="f"/> on fresh leaves cloned from <paramref name="inputs"/>; returns the value and the inputs' gradients for a fixed random upstream gradient.</summary>
    static (Tensor Value, Tensor[] Gradients) ValueAndGradients(Func<Tensor[], Tensor> f, Tensor[] inputs, Tensor upstream)
    {
        var leaves = inputs.Select(x => x.clone().requires_grad_(true)).ToArray();
        var value = f(leaves);
        (value * upstream).sum().backward();
        return (value.detach(), leaves.Select(l => l.grad!.clone()).ToArray());
    }

    static void AssertClose(Tensor expected, Tensor actual, double tolerance, string what)
    {
        Assert.Equal(expected.shape, actual.shape);
        double scale = Math.Max(MaxAbs(expected), 1e-30);
        double error = MaxAbs(actual - expected) / scale;
        Assert.True(error < tolerance, $"{what}: relative error {error}");
    }

    [Theory]
    [InlineData(ScalarType.Float64, 1e-13)]
    [InlineData(ScalarType.Float32, 1e-5)]
    public void Write_kernel_equals_the_batched_matrix_product(ScalarType dtype, double tolerance)
    {
        manual_seed(5);
        const int S = 4, D = 20; // d not a multiple of the vector width: the scalar tail runs too
        var stream = randn([3, 7, S, D], dtype: dtype);
        var output = randn([3, 7, D], dtype: dtype);
        var upstream = randn([3, 7, S, D], dtype: dtype);
        // Per-token depth matrices (mHC, dynamic HC) and one shared matrix (static HC).
        foreach (var depth in new[] { randn([3, 7, S, S + 1], dtype: dtype), randn([S, S + 1], dtype: dtype) })
        {
            Tensor[] inputs = [depth, stream, output];
            var (kernel, kernelGrads) = ValueAndGradients(x => Streams.Write(x[0], x[1], x[2]), inputs, upstream);
            var (ops, opsGrads) = ValueAndGradients(x => Streams.WriteWithTensorOps(x[0], x[1], x[2]), inputs, upstream);
            AssertClose(ops, kernel, tolerance, "value");
            foreach (var (name, i) in new[] { ("depth", 0), ("stream", 1), ("output", 2) })
                AssertClose(opsGrads[i], kernelGrads[i], tolerance, $"{dtype} gradient of the {name}, depth {string.Join("x", depth.shape)}");
        }
    }

    [Theory]
    [InlineData(ScalarType.Float64, 1e-13)]
    [InlineData(ScalarType.Float32, 1e-5)]
    public void Read_kernel_equals_the_weighted_sum(ScalarType dtype, double tolerance)
    {
        manual_seed(4);
        const int S = 4, D = 20;
        var stream = randn([3, 7, S, D], dtype: dtype);
        var upstream = randn([3, 7, D], dtype: dtype);
        // Per-token weights (mHC, dynamic HC) and one shared vector (static HC).
        foreach (var weights in new[] { randn([3, 7, S], dtype: dtype), randn([S], dtype: dtype) })
        {
            var (kernel, kernelGrads) = ValueAndGradients(x => Streams.Read(x[0], x[1]), [weights, stream], upstream);
            var (ops, opsGrads) = ValueAndGradients(x => Streams.ReadWithTensorOps(x[0], x[1]), [weights, stream], upstream);
            AssertClose(ops, kernel, tolerance, "value");
            AssertClose(opsGrads[0], kernelGrads[0], tolerance, $"{dtype} gradient of the weights {string.Join("x", weights.shape)}");
            AssertClose(opsGrads[1], kernelGrads[1], tolerance, $"{dtype} gradient of the stream");
        }
    }

    [Theory]
    [InlineData(ScalarType.Float64, 0.0, nameof(MhcInit.Uniform), 1e-12)]
    [InlineData(ScalarType.Float64, 4.0, nameof(MhcInit.Uniform), 1e-12)]
    [InlineData(ScalarType.Float64, 2.0, nameof(MhcInit.Stream), 1e-12)]
    [InlineData(ScalarType.Float32, 0.0, nameof(MhcInit.Uniform), 2e-5)]
    [InlineData(ScalarType.Float32, 2.0, nameof(MhcInit.Stream), 5e-5)] // the saturated read sigmoid leaves small gradients
    public void Mhc_width_step_kernel_equals_maps_and_read_in_value_and_every_gradient(ScalarType dtype, double resDiag, string initName, double tolerance)
    {
        var init = Enum.Parse<MhcInit>(initName); // MhcInit is internal: a public test method takes its name
        manual_seed(8);
        const int S = 4, D = 12;
        // alpha_init 0.5: maps far from their init, so every term of the backward carries weight.
        var scheme = new ManifoldHyperConnectionsScheme(S, AlphaInit: 0.5, ResDiag: resDiag, Init: init);
        using var conn = (ManifoldHyperConnections)scheme.Build(new ConnectionSite(D, 0, 4, () => nn.LayerNorm(D)));
        conn.to(dtype);
        var stream = randn([2, 3, S, D], dtype: dtype);
        var upstream = (Read: randn([2, 3, D], dtype: dtype), Post: randn([2, 3, S], dtype: dtype), Res: randn([2, 3, S, S], dtype: dtype));

        (Tensor[] Values, Tensor[] Gradients) Run(Func<Tensor, (Tensor Read, StreamMaps Maps)> step)
        {
            conn.zero_grad();
            var leaf = stream.clone().requires_grad_(true);
            var (read, maps) = step(leaf);
            ((read * upstream.Read).sum() + (maps.Post * upstream.Post).sum() + (maps.Res * upstream.Res).sum()).backward();
            var gradients = new[] { leaf.grad!.clone() }.Concat(conn.parameters().Where(p => p.grad is not null).Select(p => p.grad!.clone())).ToArray();
            return ([read.detach(), maps.Pre.detach(), maps.Post.detach(), maps.Res.detach()], gradients);
        }

        var kernel = Run(conn.WidthStep);
        var ops = Run(conn.WidthStepWithTensorOps);
        foreach (var (name, i) in new[] { ("read", 0), ("pre", 1), ("post", 2), ("res", 3) })
            AssertClose(ops.Values[i], kernel.Values[i], tolerance, $"{dtype} value of {name}");
        Assert.Equal(1 + 7, ops.Gradients.Length); // the stream, phi, three alphas, three biases (the norm is not used here)
        Assert.Equal(ops.Gradients.Length, kernel.Gradients.Length);
        for (int i = 0; i < ops.Gradients.Length; i++)
            AssertClose(ops.Gradients[i], kernel.Gradients[i], tolerance, $"{dtype} gradient {i} (0: stream, then phi, alphas, biases)");
    }

    [Fact]
    public void Write_kernel_reads_an_expanded_stream_like_a_materialised_one()
    {
        manual_seed(6);
        var x0 = randn([2, 5, 16], dtype: ScalarType.Float64);
        var depth = randn([2, 5, 3, 4], dtype: ScalarType.Float64);
        var output = randn([2, 5, 16], dtype: ScalarType.Float64);
        var upstream = randn([2, 5, 3, 16], dtype: ScalarType.Float64);
        var (expanded, expandedGrads) = ValueAndGradients(x => Streams.Write(depth, Streams.Expand(x[0], 3), output), [x0], upstream);
        var (ops, opsGrads) = ValueAndGradients(x => Streams.WriteWithTensorOps(depth, Streams.Expand(x[0], 3), output), [x0], upstream);
        AssertClose(ops, expanded, 1e-13, "value");
        AssertClose(opsGrads[0], expandedGrads[0], 1e-13, "gradient of the embedding");
    }
}
