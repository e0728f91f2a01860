using ResidualLab.Connections.Kernels;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace ResidualLab.Connections;

// Axes: b batch, t position, s streams (n of them), d width (the last axis).

/// <summary>
/// Hyper-Connections: the stream is n copies H [..., s, d] of the residual. Sublayer k reads
/// h = A_m^T H, runs once on LN(h) (d-wide), and writes H' = B^T F(LN(h)) + A_r^T H.
/// Static: A_m [n], A_r [n, n], B [n] are parameters. Dynamic: each gets a per-token term from the
/// normalised streams, A_m += s_a tanh(N(H) W_m), A_r += s_a tanh(N(H) W_r), B += s_b tanh(N(H) W_b),
/// with W = 0 and s_a = s_b = 0.01 at init.
/// The init equals pre-norm: B = 1, A_m = e_(k mod n), A_r = I: every stream stays the pre-norm stream
/// and the model output (the sum of the streams) is n times pre-norm's. The vision models reduce each
/// stage's streams to their mean instead (<see cref="ResidualPass.Finish"/>), so a stage's output is pre-norm's.
/// Zhu et al. 2024, "Hyper-Connections" (arXiv 2409.19606).
/// On the CIFAR ResNet: streams reduced to their mean per stage (their sum blew up).
/// </summary>
public sealed record HyperConnectionsScheme(int N = HyperConnectionsScheme.DefaultN, bool Dynamic = true) : ConnectionScheme
{
    /// <summary>The default expansion rate (number of streams), as the paper's experiments.</summary>
    public const int DefaultN = 4;

    /// <summary>The expansion rate n, in [1, 64].</summary>
    public int N { get; } = SchemeArguments.InRange(N, 1, 64, "hyper-connections", "n");

    /// <inheritdoc/>
    public override string Name => "hyper-connections";
    /// <inheritdoc/>
    public override Connection Build(ConnectionSite site) => new HyperConnections(site, N, Dynamic);
    /// <summary>
    /// The read A_m^T H (2 n d), LN of it (7 d) and the write D [H; y] (2 n (n + 1) d). Dynamic adds N(H)
    /// on each stream (7 n d), N(H) [W_m | W_r | W_b] (2 n d (n + 2)), tanh (n (n + 2)) and the scaled sums
    /// with the static weights (2 n (n + 2)).
    /// </summary>
    internal override double ForwardFlops(ConnectionSite site)
    {
        int d = site.Width;
        double dynamic = Dynamic ? N * ConnectionFlops.LayerNorm(d) + N * ConnectionFlops.MatVec(d, N + 2) + 3.0 * N * (N + 2) : 0;
        return dynamic + ConnectionFlops.WeightedSum(N, d) + ConnectionFlops.LayerNorm(d) + ConnectionFlops.StreamWrite(N, d);
    }

    /// <summary>The sum of the n streams at the output.</summary>
    internal override double StreamFlops(int width) => ConnectionFlops.StreamSum(N, width);
    /// <inheritdoc/>
    public override Tensor Expand(Tensor x0) => Streams.Expand(x0, N);
    /// <inheritdoc/>
    public override Tensor Reduce(Tensor stream) => Streams.Reduce(stream);
    /// <inheritdoc/>
    public override IReadOnlyDictionary<string, object> Options =>
        new Dictionary<string, object> { ["n"] = (long)N, ["dynamic"] = Dynamic };
}

internal sealed class HyperConnections : Connection, IStreamMixing
{
    const double DynamicScaleInit = 0.01;

    readonly nn.Module<Tensor, Tensor> norm;     // the sublayer's pre-norm
    readonly Parameter read;                     // A_m [n]
    readonly Parameter residual;                 // A_r [n (from), n (to)]
    readonly Parameter write;                    // B [n]
    readonly nn.Module<Tensor, Tensor>? dynamic_norm;
    readonly Parameter? dynamic_proj;            // [W_m | W_r | W_b], [d, 1 + n + 1]
    readonly Parameter? read_scale;              // s_a
    readonly Parameter? write_scale;             // s_b
    readonly int n;

    public HyperConnections(ConnectionSite site, int n, bool dynamic) : base(nameof(HyperConnections))
    {
        this.n = n;
        norm = site.MakeNorm();
        var am = zeros(n);
        am[site.SublayerIndex % n].fill_(1);
        read = nn.Parameter(am);
        residual = nn.Parameter(eye(n));
        write = nn.Parameter(ones(n));
        if (dynamic)
        {
            dynamic_norm = site.MakeNorm();
            dynamic_proj = nn.Parameter(zeros(site.Width, n + 2));
            read_scale = nn.Parameter(full(1, DynamicScaleInit));
            write_scale = nn.Parameter(full(1, DynamicScaleInit));
        }
        RegisterComponents();
    }

    public StreamMaps? LastMaps { get; private set; }

    public IEnumerable<Parameter> ResidualMixingParameters => [residual];

    public override Branch Prepare(Tensor stream, LayerContext ctx)
    {
        var step = Width(stream);
        LastMaps = step.Maps;
        return new(norm.call(step.Read), step.Stream, step.Depth);
    }

    /// <summary>
    /// The read A_m^T H [..., d], the maps and the depth matrix [A_r^T | B]: static, the read kernel (or its tensor
    /// operations); dynamic, on the CPU with a LayerNorm as the dynamic norm one fused kernel
    /// (<see cref="HyperConnectionsWidthStepKernel"/>), elsewhere <see cref="WidthWithTensorOps"/>; the same function.
    /// </summary>
    public WidthStep Width(Tensor stream)
    {
        if (dynamic_proj is null)
        {
            var depth = cat([residual.transpose(-1, -2), write.unsqueeze(-1)], -1); // [s, s + 1]
            var (input, forDepthStep) = Streams.ReadForDepthStep(read, stream);
            return new(input, new StreamMaps(read, write, residual.transpose(-1, -2)), depth, forDepthStep);
        }
        if (dynamic_norm is not LayerNorm { weight: { } gamma } layerNorm || !HyperConnectionsWidthStepKernel.Applies(stream, dynamic_proj))
            return WidthWithTensorOps(stream);
        var (h, pre, depthPerToken, stream2) = HyperConnectionsWidthStepKernel.Run(stream, dynamic_proj, gamma,
            layerNorm.bias ?? zeros_like(gamma), read, residual, write, cat([read_scale!, write_scale!]), layerNorm.eps);
        return WidthStep.FromDepth(h, pre, depthPerToken, stream2);
    }

    /// <summary>The width step as tensor operations differentiated by autograd (any device): the definition.</summary>
    public WidthStep WidthWithTensorOps(Tensor stream)
    {
        Tensor am, ar, b;
        if (dynamic_proj is null)
            (am, ar, b) = (read, residual, write);
        else
        {
            var w = dynamic_norm!.call(stream).matmul(dynamic_proj).tanh(); // [..., s, n + 2]
            am = read + read_scale! * w[TensorIndex.Ellipsis, 0];                          // [..., s]
            ar = residual + read_scale! * w[TensorIndex.Ellipsis, TensorIndex.Slice(1, n + 1)]; // [..., s, n]
            b = write + write_scale! * w[TensorIndex.Ellipsis, n + 1];                     // [..., s]
        }
        var depth = cat([ar.transpose(-1, -2), b.unsqueeze(-1)], -1); // [..., s, s + 1]
        return new(Streams.ReadWithTensorOps(am, stream), new StreamMaps(am, b, ar.transpose(-1, -2)), depth, stream);
    }

    public override Tensor Combine(Tensor output, Branch branch, LayerContext ctx) =>
        Streams.Write(branch.Mix!, branch.Stream, output);
}
