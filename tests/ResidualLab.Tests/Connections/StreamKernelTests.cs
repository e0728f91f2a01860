using ResidualLab.Connections;
using ResidualLab.Connections.Kernels;
using ResidualLab.Layers;
using TorchSharp;
using static TorchSharp.torch;

namespace ResidualLab.Tests.Connections;

/// <summary>
/// The CPU kernels of the n-stream residual equal their tensor-operation definitions, in value and in every gradient:
/// float64 to 1e-12 of the largest value, float32 to the tolerance each test states (the kernels sum in another order
/// and with fused multiply-adds), on 1 and on 2 threads. The shapes leave a partial last block of tokens and a width
/// that is not a multiple of the vector length, so the padding and the scalar tails run too. The Vector256 kernels (what
/// a CPU without AVX-512 runs) are held to the same definitions (a negative thread count in the cases below).
/// </summary>
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

    /// <summary>
    /// Runs <paramref name="body"/> with libtorch (and so the kernels) on <paramref name="threads"/> threads; a negative
    /// count runs it on -threads threads with the kernels on Vector256 (the AVX2 path) even where the CPU has AVX-512.
    /// </summary>
    static void OnThreads(int threads, Action body)
    {
        int before = get_num_threads();
        bool wide = CpuLoops.Wide;
        set_num_threads(Math.Abs(threads));
        if (threads < 0) CpuLoops.Wide = false;
        try { body(); }
        finally
        {
            set_num_threads(before);
            CpuLoops.Wide = wide;
        }
    }

    [Theory]
    [InlineData(ScalarType.Float64, 1e-12, 1)]
    [InlineData(ScalarType.Float64, 1e-12, 2)]
    [InlineData(ScalarType.Float32, 2e-6, 1)]
    [InlineData(ScalarType.Float32, 2e-6, 2)]
    [InlineData(ScalarType.Float64, 1e-12, -2)]
    [InlineData(ScalarType.Float32, 2e-6, -2)]
    public void Write_kernel_equals_the_batched_matrix_product(ScalarType dtype, double tolerance, int threads) => OnThreads(threads, () =>
    {
        manual_seed(5);
        const int S = 4, D = 20; // d not a multiple of the vector width: the scalar tail runs too
        var stream = randn([3, 7, S, D], dtype: dtype);
        var sharedOutput = randn([3, 7, D], dtype: dtype);
        var outputPerStream = randn([3, 7, S, D], dtype: dtype);
        var upstream = randn([3, 7, S, D], dtype: dtype);
        // Per-token depth matrices (mHC, dynamic HC) and one shared matrix (static HC); the output added to every stream
        // and one output per stream (Frac-Connections' fractions).
        foreach (var (depth, output) in new[]
                 {
                     (randn([3, 7, S, S + 1], dtype: dtype), sharedOutput), (randn([S, S + 1], dtype: dtype), sharedOutput),
                     (randn([3, 7, S, S + 1], dtype: dtype), outputPerStream), (randn([S, S + 1], dtype: dtype), outputPerStream),
                 })
        {
            Tensor[] inputs = [depth, stream, output];
            var (kernel, kernelGrads) = ValueAndGradients(x => Streams.Write(x[0], x[1], x[2]), inputs, upstream);
            var (ops, opsGrads) = ValueAndGradients(x => Streams.WriteWithTensorOps(x[0], x[1], x[2]), inputs, upstream);
            AssertClose(ops, kernel, tolerance, "value");
            foreach (var (name, i) in new[] { ("depth", 0), ("stream", 1), ("output", 2) })
                AssertClose(opsGrads[i], kernelGrads[i], tolerance,
                    $"{dtype} gradient of the {name}, depth {string.Join("x", depth.shape)}, output {string.Join("x", output.shape)}");
        }
    });

    [Theory]
    [InlineData(ScalarType.Float64, 1e-12, 1)]
    [InlineData(ScalarType.Float64, 1e-12, 2)]
    [InlineData(ScalarType.Float32, 2e-6, 1)]
    [InlineData(ScalarType.Float32, 2e-6, 2)]
    [InlineData(ScalarType.Float64, 1e-12, -2)]
    [InlineData(ScalarType.Float32, 2e-6, -2)]
    public void Read_kernel_equals_the_weighted_sum(ScalarType dtype, double tolerance, int threads) => OnThreads(threads, () =>
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
    });

    /// <summary>What a width step gives, for the comparison: the read, H_pre (null where the scheme has none), the depth matrix, the stream for the depth step.</summary>
    record struct Width(Tensor Read, Tensor? Pre, Tensor Depth, Tensor Stream)
    {
        public static Width Of(WidthStep step) => new(step.Read, step.Maps.Pre, step.Depth, step.Stream);
        public static Width Of((Tensor Read, Tensor Depth, Tensor Stream) step) => new(step.Read, null, step.Depth, step.Stream);
    }

    /// <summary>A connection of a multi-stream scheme with its fused and its tensor-operation width step.</summary>
    static (Connection Connection, Func<Tensor, Width> Fused, Func<Tensor, Width> Definition) StreamConnection(string scheme, int streams, int width)
    {
        var site = new ConnectionSite(width, 1, 4, () => nn.LayerNorm(width));
        Connection connection = scheme switch
        {
            "mhc" => new ManifoldHyperConnectionsScheme(streams, Init: MhcInit.Stream).Build(site),
            "mhc:uniform" => new ManifoldHyperConnectionsScheme(streams, ResDiag: 0, Init: MhcInit.Uniform).Build(site),
            "mhc-lite" => new MhcLiteScheme(streams, ResGap: 1).Build(site),
            "kromhc" => new KromHcScheme(streams, ResGap: 1).Build(site),
            "hyper-connections" => new HyperConnectionsScheme(streams, Dynamic: true).Build(site),
            "hyper-connections:static" => new HyperConnectionsScheme(streams, Dynamic: false).Build(site),
            "frac-connections" => new FracConnectionsScheme(streams, Dynamic: true).Build(site),
            "frac-connections:static" => new FracConnectionsScheme(streams, Dynamic: false).Build(site),
            _ => throw new ArgumentException(scheme),
        };
        return connection switch
        {
            ManifoldHyperConnections m => (m, x => Width.Of(m.Width(x)), x => Width.Of(m.WidthWithTensorOps(x))),
            ConvexStreamMixing m => (m, x => Width.Of(m.Width(x)), x => Width.Of(m.WidthWithTensorOps(x))),
            HyperConnections m => (m, x => Width.Of(m.Width(x)), x => Width.Of(m.WidthWithTensorOps(x))),
            FracConnections m => (m, x => Width.Of(m.Width(x)), x => Width.Of(m.WidthWithTensorOps(x))),
            _ => throw new ArgumentException(connection.GetType().Name),
        };
    }

    [Theory]
    [InlineData("mhc", ScalarType.Float64, 1e-12, 1)]
    [InlineData("mhc", ScalarType.Float64, 1e-12, 2)]
    [InlineData("mhc:uniform", ScalarType.Float64, 1e-12, 2)]
    [InlineData("mhc-lite", ScalarType.Float64, 1e-12, 2)]
    [InlineData("kromhc", ScalarType.Float64, 1e-12, 2)]
    [InlineData("hyper-connections", ScalarType.Float64, 1e-12, 1)]
    [InlineData("hyper-connections", ScalarType.Float64, 1e-12, 2)]
    [InlineData("hyper-connections:static", ScalarType.Float64, 1e-12, 2)]
    [InlineData("frac-connections", ScalarType.Float64, 1e-12, 1)]
    [InlineData("frac-connections", ScalarType.Float64, 1e-12, 2)]
    [InlineData("frac-connections:static", ScalarType.Float64, 1e-12, 2)]
    [InlineData("mhc", ScalarType.Float32, 1e-4, 1)]
    [InlineData("mhc", ScalarType.Float32, 1e-4, 2)]
    [InlineData("mhc-lite", ScalarType.Float32, 1e-4, 2)]
    [InlineData("kromhc", ScalarType.Float32, 1e-4, 2)]
    [InlineData("hyper-connections", ScalarType.Float32, 1e-4, 2)]
    [InlineData("hyper-connections:static", ScalarType.Float32, 1e-4, 2)]
    [InlineData("frac-connections", ScalarType.Float32, 1e-4, 2)]
    [InlineData("frac-connections:static", ScalarType.Float32, 1e-4, 2)]
    [InlineData("mhc", ScalarType.Float64, 1e-12, -2)]
    [InlineData("mhc-lite", ScalarType.Float64, 1e-12, -2)]
    [InlineData("kromhc", ScalarType.Float64, 1e-12, -2)]
    [InlineData("hyper-connections", ScalarType.Float64, 1e-12, -2)]
    [InlineData("hyper-connections:static", ScalarType.Float64, 1e-12, -2)]
    [InlineData("frac-connections", ScalarType.Float64, 1e-12, -2)]
    [InlineData("mhc", ScalarType.Float32, 1e-4, -2)]
    [InlineData("hyper-connections", ScalarType.Float32, 1e-4, -2)]
    [InlineData("frac-connections", ScalarType.Float32, 1e-4, -2)]
    public void Width_step_kernel_equals_its_tensor_definition_in_value_and_every_gradient(string scheme, ScalarType dtype, double tolerance, int threads) => OnThreads(threads, () =>
    {
        manual_seed(8);
        bool fractions = scheme.StartsWith("frac");
        int S = 4, D = fractions ? 20 : 13; // Frac-Connections: 4 fractions of 5
        var (conn, fused, definition) = StreamConnection(scheme, S, D);
        using var _ = conn;
        conn.to(dtype);
        using (no_grad())
            foreach (var (name, p) in conn.named_parameters())
            {
                // Every parameter away from its init (alphas and dynamic scales 0.5, dynamic projection and norm perturbed),
                // so that every term of the backward carries weight.
                if (name.StartsWith("alpha_") || name.EndsWith("_scale")) p.fill_(0.5);
                else p.add_(0.3 * randn_like(p));
            }
        long[] streamShape = fractions ? [5, 9, D] : [5, 9, S, D]; // 45 tokens: a partial last block for any vector width
        var stream = randn(streamShape, dtype: dtype);
        var upstream = (Read: randn([5, 9, D], dtype: dtype), Pre: randn([5, 9, S], dtype: dtype), Depth: randn([5, 9, S, S + 1], dtype: dtype),
            Stream: randn(streamShape, dtype: dtype));

        (Tensor[] Values, Dictionary<string, Tensor> Gradients) Run(Func<Tensor, Width> step)
        {
            conn.zero_grad();
            var leaf = stream.clone().requires_grad_(true);
            var result = step(leaf);
            // The depth step's gradient of the stream comes in through Stream: the fused kernels add it in their backward.
            var loss = (result.Read * upstream.Read).sum() + (result.Depth * upstream.Depth).sum() + (result.Stream * upstream.Stream).sum();
            if (result.Pre is { } pre) loss = loss + (pre * upstream.Pre).sum();
            loss.backward();
            var gradients = conn.named_parameters().Where(p => p.parameter.grad is not null).ToDictionary(p => p.name, p => p.parameter.grad!.clone());
            gradients["stream"] = leaf.grad!.clone();
            return ([result.Read.detach(), result.Depth.detach(), .. result.Pre is { } p ? new[] { p.detach() } : []], gradients);
        }

        var kernel = Run(fused);
        var ops = Run(definition);
        Assert.Equal(ops.Values.Length, kernel.Values.Length);
        for (int i = 0; i < ops.Values.Length; i++)
            AssertClose(ops.Values[i], kernel.Values[i], tolerance, $"{scheme} {dtype} value {i} (read, depth, H_pre)");
        Assert.True(ops.Gradients.Count >= 4, $"{scheme}: the stream and at least three parameters get gradients");
        Assert.Equal(ops.Gradients.Keys.Order(), kernel.Gradients.Keys.Order());
        foreach (var (name, expected) in ops.Gradients)
            AssertClose(expected, kernel.Gradients[name], tolerance, $"{scheme} {dtype} gradient of {name}");
    });

    [Theory]
    [InlineData(ScalarType.Float64, 1e-12, 1)]
    [InlineData(ScalarType.Float64, 1e-12, 2)]
    [InlineData(ScalarType.Float32, 1e-5, 1)]
    [InlineData(ScalarType.Float32, 1e-5, 2)]
    [InlineData(ScalarType.Float64, 1e-12, -2)]
    [InlineData(ScalarType.Float32, 1e-5, -2)]
    public void Attention_residuals_kernel_equals_the_stacked_softmax_attention(ScalarType dtype, double tolerance, int threads) => OnThreads(threads, () =>
    {
        manual_seed(9);
        const int K = 3, D = 13;
        var sources = Enumerable.Range(0, K).Select(j => (1 + j) * randn([5, 9, D], dtype: dtype)).ToArray();
        var query = randn([D], dtype: dtype);
        using var keyNorm = new RMSNorm(D);
        keyNorm.to(dtype);
        using (no_grad()) keyNorm.Weight.add_(0.3 * randn_like(keyNorm.Weight));
        var upstream = (Value: randn([5, 9, D], dtype: dtype), Weights: randn([5, 9, K], dtype: dtype));

        (Tensor Value, Tensor Weights, Tensor[] Gradients) Run(Func<Tensor, RMSNorm, List<Tensor>, (Tensor, Tensor)> attend)
        {
            keyNorm.zero_grad();
            var leaves = sources.Select(x => x.clone().requires_grad_(true)).ToList();
            var q = query.clone().requires_grad_(true);
            var (value, weights) = attend(q, keyNorm, leaves);
            ((value * upstream.Value).sum() + (weights * upstream.Weights).sum()).backward();
            return (value.detach(), weights.detach(), [.. leaves.Select(l => l.grad!.clone()), q.grad!.clone(), keyNorm.Weight.grad!.clone()]);
        }

        var kernel = Run(AttentionResiduals.Attend);
        var ops = Run(AttentionResiduals.AttendWithTensorOps);
        AssertClose(ops.Value, kernel.Value, tolerance, $"{dtype} value");
        AssertClose(ops.Weights, kernel.Weights, tolerance, $"{dtype} weights");
        for (int i = 0; i < ops.Gradients.Length; i++)
            AssertClose(ops.Gradients[i], kernel.Gradients[i], tolerance, $"{dtype} gradient {i} (sources, then the query and the key norm's scale)");
    });

    [Fact]
    public void Block_attention_residuals_attend_over_the_embedding_and_the_sums_of_the_blocks()
    {
        manual_seed(10);
        const int D = 8, Sublayers = 8;
        var scheme = new AttentionResidualsScheme(3); // blocks of 3 sublayers
        var connections = Enumerable.Range(0, Sublayers)
            .Select(l => (AttentionResiduals)scheme.Build(new ConnectionSite(D, l, Sublayers, () => nn.LayerNorm(D)))).ToList();
        foreach (var c in connections) c.to(ScalarType.Float64);
        using (no_grad())
            foreach (var (name, p) in connections.SelectMany(c => c.named_parameters()))
                if (name == "query" || name == "key_norm.weight") p.add_(randn_like(p));
        var mixing = Enumerable.Range(0, Sublayers).Select(_ => randn([D, D], dtype: ScalarType.Float64)).ToList();
        var pass = new ResidualPass(scheme, randn([2, 3, D], dtype: ScalarType.Float64), Sublayers);
        for (int l = 0; l < Sublayers; l++)
        {
            int sublayer = l;
            pass.Step(connections[l], b => b.Input.matmul(mixing[sublayer]).tanh());
            // The values before sublayer l: v_0 .. v_l; blocks of 3 values from v_1 on.
            var values = pass.Context.History.Take(l + 1).ToList();
            var sources = new List<Tensor> { values[0] };
            for (int start = 1; start < values.Count; start += 3)
                sources.Add(values.Skip(start).Take(3).Aggregate((a, b) => a + b));
            using var keyNorm = new RMSNorm(D);
            keyNorm.to(ScalarType.Float64);
            var parameters = connections[l].named_parameters().ToDictionary(p => p.name, p => p.parameter);
            using (no_grad()) keyNorm.Weight.copy_(parameters["key_norm.weight"]);
            var expected = AttentionResiduals.AttendWithTensorOps(parameters["query"], keyNorm, sources).Weights;
            AssertClose(expected, connections[l].LastWeights!, 1e-12, $"the depth weights of sublayer {l}");
        }
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

    [Fact]
    public void One_thread_drives_libtorchs_OpenMP_team_and_it_runs_every_chunk_once()
    {
        int[] Runs(Func<int, Action<int>, bool> run, out bool ran)
        {
            var counts = new int[5];
            ran = run(counts.Length, chunk => Interlocked.Increment(ref counts[chunk]));
            return counts;
        }
        var here = Runs(OpenMpTeam.TryRun, out bool ranHere);
        bool ranThere = false;
        var other = new Thread(() => Runs(OpenMpTeam.TryRun, out ranThere));
        other.Start();
        other.Join();
        Assert.False(ranHere && ranThere); // a second thread never drives a team of its own
        if (ranHere) Assert.All(here, n => Assert.Equal(1, n));
        else Assert.All(here, n => Assert.Equal(0, n)); // not run: the caller takes .NET's pool
    }
}
