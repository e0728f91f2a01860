using ResidualLab.Connections.Kernels;
using ResidualLab.Layers;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace ResidualLab.Connections;

// Axes: b batch, t position, s streams (n of them), d width (the last axis).

/// <summary>
/// mHC, manifold-constrained Hyper-Connections: x_{l+1} = H_res x_l + H_post^T F(H_pre x_l) on n streams
/// x_l [..., s, d], with per-token maps from the flattened, RMS-normalised streams:
/// H~ = alpha * (RMSNorm(flatten(x_l)) phi) + b, H_pre = sigmoid(H~_pre) [n], H_post = 2 sigmoid(H~_post) [n],
/// H_res = SinkhornKnopp(exp(H~_res)) [n, n] (doubly stochastic up to t_max iterations).
/// The sublayer runs once, d-wide, on LN(H_pre x_l). RMSNorm's weight is folded into phi and its
/// division applied after the product, an exact reordering that never materialises the normalised
/// [..., n d] input: RMSNorm(x) phi = (x phi) / rms(x). Separate alphas for pre, post and res start at
/// alpha_init; phi ~ N(0, 1/(n d)); b_post = 0 (H_post = 1); b_res = res_diag on the diagonal, 0 off it.
/// <para>
/// The streams start as copies of the embedding. A copy satisfies H_res x = x for every doubly stochastic
/// H_res: the loss sees only H_res's row sums, which Sinkhorn holds at 1, so no gradient reaches its logits
/// and H_res learns only as fast as the streams come apart. With every stream written
/// alike (H_post = 1), they come apart only through phi's small per-token term and through b_post, whose
/// per-stream gradients differ (later sublayers read different streams) but share their sign, so Adam moves
/// them alike. The options, each from a source:
/// <list type="bullet">
/// <item><c>init</c>, the read: <see cref="MhcInit.Stream"/> (default) reads as Hyper-Connections do at init
/// (A_m = e_(k mod n), arXiv 2409.19606, sec. 2.3): sublayer k reads stream k mod n, b_pre = +4 there and -4
/// elsewhere (H_pre = 0.98 / 0.018). The public mHC implementations lean the read the same way, by other amounts:
/// lucidrains/hyper-connections puts a one-hot logit under the sigmoid (H_pre = sigmoid(1) = 0.73 on stream k,
/// sigmoid(0) = 0.5 on the others), tokenbender/mHC softmaxes logits of 0 and -8 (0.999 / 0.0003).
/// <see cref="MhcInit.Uniform"/>: b_pre = -ln(max(n - 1, 1)) (H_pre = 1/n, the mean of the streams).</item>
/// <item><c>write</c>, the write: <see cref="MhcWrite.Uniform"/> (default) b_post = 0, H_post = 2 sigmoid(0) = 1 on
/// every stream, as HC's B = 1 starts. The public implementations write every stream alike too, at other scales:
/// lucidrains' static beta of 1 under 2 sigmoid gives H_post = 2 sigmoid(1) = 1.46, tokenbender's softmax of zeros
/// 1/n (0.25 at n = 4). <see cref="MhcWrite.Stream"/>: sublayer k writes mostly to the stream it reads, b_post = +4
/// there and -4 elsewhere (H_post = 1.96 / 0.036): the streams differ after the first sublayer at init. No paper
/// prescribes it; it is the write counterpart of HC's read.</item>
/// <item><c>stream_embed</c>: a learned [n, d] embedding per stream, zero at init, added to the expanded stream
/// (lucidrains/hyper-connections' <c>add_stream_embed</c>, off by default there too). The first sublayer's
/// connection owns it and adds it before its width step, so <c>blocks.0.hook_resid_pre</c> shows the copies.
/// At zero the model is unchanged; its gradient is each stream's own gradient at expansion, which differs
/// between streams as soon as the reads do.</item>
/// </list>
/// The mHC paper gives alpha_init = 0.01 and t_max = 20 but no bias values. H_res leans to the identity, as in
/// both public implementations, by a chosen amount: res_diag = 2 gives a diagonal of 0.71 at n = 4; lucidrains'
/// identity logits are res_diag = 1 (diagonal e / (e + n - 1) = 0.48 at n = 4); tokenbender's logits of 0 and -8 at
/// Sinkhorn temperature 0.05 give the identity to float precision.
/// </para>
/// Sinkhorn's remaining row error at init shrinks per round by about lambda^2, lambda = (e^r - 1) / (e^r + n - 1)
/// for res_diag r: at r = 2, n = 4 and 20 rounds it is below 1e-6; r = 4 leaves ~1e-4 (tested).
/// On the CPU the width step and the depth step run as fused kernels (MhcWidthStepKernel, StreamWriteKernel),
/// tested equal to these tensor operations in value and gradient.
/// Xie et al. 2025 (DeepSeek), "mHC: Manifold-Constrained Hyper-Connections" (arXiv 2512.24880).
/// On the CIFAR ResNet: streams reduced to their mean per stage (their sum blew up).
/// </summary>
public sealed record ManifoldHyperConnectionsScheme(
    int N = ManifoldHyperConnectionsScheme.DefaultN,
    int SinkhornIterations = Sinkhorn.DefaultIterations,
    double AlphaInit = ManifoldHyperConnectionsScheme.DefaultAlphaInit,
    double ResDiag = ManifoldHyperConnectionsScheme.DefaultResDiag,
    MhcInit Init = MhcInit.Stream,
    MhcWrite Write = MhcWrite.Uniform,
    bool StreamEmbed = false) : ConnectionScheme
{
    /// <summary>The paper's expansion rate n.</summary>
    public const int DefaultN = 4;
    /// <summary>The paper's initial gating factor alpha.</summary>
    public const double DefaultAlphaInit = 0.01;
    /// <summary>The default diagonal of H_res's bias: H_res leans to the identity (diagonal 0.71 at n = 4).</summary>
    public const double DefaultResDiag = 2;

    /// <summary>The expansion rate n, in [1, 64].</summary>
    public int N { get; } = SchemeArguments.InRange(N, 1, 64, "mhc", "n");
    /// <summary>Sinkhorn-Knopp iterations t_max, in [1, 10000].</summary>
    public int SinkhornIterations { get; } = SchemeArguments.InRange(SinkhornIterations, 1, 10000, "mhc", "sinkhorn_iters");
    /// <summary>Initial gating factors alpha of the per-token maps, in [0, 100].</summary>
    public double AlphaInit { get; } = SchemeArguments.InRange(AlphaInit, 0, 100, "mhc", "alpha_init");
    /// <summary>Initial diagonal of H_res's bias, in [-100, 100] (0: uniform mixing; larger: closer to the identity).</summary>
    public double ResDiag { get; } = SchemeArguments.InRange(ResDiag, -100, 100, "mhc", "res_diag");
    /// <summary>|b_pre| of <see cref="MhcInit.Stream"/> and |b_post| of <see cref="MhcWrite.Stream"/>: sigmoid(4) = 0.982
    /// on the stream read (2 sigmoid(4) = 1.96 on the stream written), sigmoid(-4) = 0.018 elsewhere.</summary>
    public const double StreamReadLogit = 4;

    /// <inheritdoc/>
    public override string Name => "mhc";
    /// <inheritdoc/>
    public override Connection Build(ConnectionSite site) => new ManifoldHyperConnections(site, this);
    /// <summary>
    /// mHC's maps, H_pre, H_post and H_res, from the n d-wide flattened streams: x phi, phi [n d, 2n + n^2]
    /// (2 n d (2n + n^2)), 1 / rms(x) (2 n d) and its product with the coefficients (2n + n^2); alpha H~ + b and
    /// sigmoid for H_pre (3 n), the same and x 2 for H_post (4 n), alpha H~ + b for H_res (2 n^2); Sinkhorn:
    /// max subtraction and exp (2 n^2), then per round the row and column sums and divisions (4 n^2).
    /// Then the read H_pre x (2 n d), LN (7 d) and the write [H_res | H_post] [x; y] (2 n (n + 1) d).
    /// </summary>
    internal override double ForwardFlops(ConnectionSite site)
    {
        int d = site.Width;
        int coefficients = 2 * N + N * N;
        double maps = ConnectionFlops.MatVec((long)N * d, coefficients) + 2.0 * N * d + coefficients
            + 7.0 * N + 2.0 * N * N + 2.0 * N * N + 4.0 * N * N * SinkhornIterations;
        return maps + ConnectionFlops.WeightedSum(N, d) + ConnectionFlops.LayerNorm(d) + ConnectionFlops.StreamWrite(N, d);
    }

    /// <summary>The sum of the n streams at the output.</summary>
    internal override double StreamFlops(int width) => ConnectionFlops.StreamSum(N, width);
    /// <inheritdoc/>
    public override Tensor Expand(Tensor x0) => Streams.Expand(x0, N);
    /// <inheritdoc/>
    public override Tensor Reduce(Tensor stream) => Streams.Reduce(stream);
    /// <inheritdoc/>
    public override IReadOnlyDictionary<string, object> Options => new Dictionary<string, object>
    {
        ["n"] = (long)N, ["sinkhorn_iters"] = (long)SinkhornIterations, ["alpha_init"] = AlphaInit, ["res_diag"] = ResDiag,
        ["init"] = Init == MhcInit.Stream ? "stream" : "uniform",
        ["write"] = Write == MhcWrite.Stream ? "stream" : "uniform",
        ["stream_embed"] = StreamEmbed,
    };
}

/// <summary>How mHC's read bias b_pre starts (see <see cref="ManifoldHyperConnectionsScheme"/>).</summary>
public enum MhcInit
{
    /// <summary>Sublayer k reads stream k mod n, as Hyper-Connections do at init.</summary>
    Stream,
    /// <summary>Every sublayer reads the mean of the streams (H_pre = 1/n): the streams stay copies.</summary>
    Uniform,
}

/// <summary>How mHC's write bias b_post starts (see <see cref="ManifoldHyperConnectionsScheme"/>).</summary>
public enum MhcWrite
{
    /// <summary>Every stream receives the sublayer's output (H_post = 1), as Hyper-Connections' B = 1 starts.</summary>
    Uniform,
    /// <summary>Sublayer k writes mostly to stream k mod n (H_post = 1.96 there, 0.036 elsewhere).</summary>
    Stream,
}

internal sealed class ManifoldHyperConnections : Connection, IStreamMixing
{
    readonly nn.Module<Tensor, Tensor> norm;  // the sublayer's pre-norm
    readonly Parameter phi;                   // [n d, n + n + n^2]: pre | post | res
    readonly Parameter alpha_pre, alpha_post, alpha_res;
    readonly Parameter b_pre, b_post, b_res;
    readonly Parameter? stream_embed;         // [n, d], only in the first sublayer's connection
    readonly int n;
    readonly int iterations;

    public ManifoldHyperConnections(ConnectionSite site, ManifoldHyperConnectionsScheme scheme) : base(nameof(ManifoldHyperConnections))
    {
        n = scheme.N;
        iterations = scheme.SinkhornIterations;
        long nd = (long)n * site.Width;
        norm = site.MakeNorm();
        phi = nn.Parameter(normal(0.0, 1.0 / Math.Sqrt(nd), [nd, 2 * n + n * n]));
        alpha_pre = nn.Parameter(full(1, scheme.AlphaInit));
        alpha_post = nn.Parameter(full(1, scheme.AlphaInit));
        alpha_res = nn.Parameter(full(1, scheme.AlphaInit));
        b_pre = nn.Parameter(scheme.Init == MhcInit.Uniform ? full(n, -Math.Log(Math.Max(n - 1, 1))) : LeanToStream(n, site.SublayerIndex));
        b_post = nn.Parameter(scheme.Write == MhcWrite.Uniform ? zeros(n) : LeanToStream(n, site.SublayerIndex));
        b_res = nn.Parameter(eye(n) * scheme.ResDiag);
        if (scheme.StreamEmbed && site.SublayerIndex == 0) stream_embed = nn.Parameter(zeros(n, site.Width));
        RegisterComponents();
    }

    /// <summary>+4 on stream k mod n, -4 on the others.</summary>
    static Tensor LeanToStream(int n, int sublayer)
    {
        var bias = full(n, -ManifoldHyperConnectionsScheme.StreamReadLogit);
        bias[sublayer % n] = ManifoldHyperConnectionsScheme.StreamReadLogit;
        return bias;
    }

    /// <summary>The per-token maps (H_pre [..., n], H_post [..., n], H_res [..., n, n]) for a stream [..., n, d], as tensor operations.</summary>
    public (Tensor Pre, Tensor Post, Tensor Res) Maps(Tensor stream)
    {
        var flat = stream.flatten(-2);                                         // [..., n d]
        var coeffs = flat.matmul(phi) * RMSNorm.InverseRms(flat);               // [..., 2n + n^2]
        var pre = sigmoid(alpha_pre * coeffs[TensorIndex.Ellipsis, TensorIndex.Slice(0, n)] + b_pre);
        var post = 2 * sigmoid(alpha_post * coeffs[TensorIndex.Ellipsis, TensorIndex.Slice(n, 2 * n)] + b_post);
        var resLogits = alpha_res * coeffs[TensorIndex.Ellipsis, TensorIndex.Slice(2 * n, null)].unflatten(coeffs.dim() - 1, [n, n]) + b_res;
        return (pre, post, Sinkhorn.ProjectWithTensorOps(resLogits, iterations));
    }

    public StreamMaps? LastMaps { get; private set; }

    public IEnumerable<Parameter> ResidualMixingParameters => [b_res];

    public override Branch Prepare(Tensor stream, LayerContext ctx)
    {
        if (stream_embed is not null) stream = stream + stream_embed; // [..., s, d] + [s, d]
        var step = Width(stream);
        LastMaps = step.Maps;
        return new(norm.call(step.Read), step.Stream, step.Depth);
    }

    /// <summary>
    /// The read H_pre x_l [..., d], the maps and the depth matrix: on the CPU one fused kernel (<see cref="MhcWidthStepKernel"/>),
    /// elsewhere <see cref="WidthWithTensorOps"/>; the same function.
    /// </summary>
    public WidthStep Width(Tensor stream)
    {
        if (!MhcWidthStepKernel.Applies(stream, phi)) return WidthWithTensorOps(stream);
        var (read, pre, depth, forDepthStep) = MhcWidthStepKernel.Run(stream, phi, cat([alpha_pre, alpha_post, alpha_res]),
            cat([b_pre, b_post, b_res.flatten()]), new SinkhornMap(n, iterations), RMSNorm.DefaultEps);
        return WidthStep.FromDepth(read, pre, depth, forDepthStep);
    }

    /// <summary>The width step as tensor operations differentiated by autograd (any device): the definition.</summary>
    public WidthStep WidthWithTensorOps(Tensor stream)
    {
        var (pre, post, res) = Maps(stream);
        return WidthStep.FromMaps(Streams.ReadWithTensorOps(pre, stream), new StreamMaps(pre, post, res), stream);
    }

    public override Tensor Combine(Tensor output, Branch branch, LayerContext ctx) =>
        Streams.Write(branch.Mix!, branch.Stream, output);
}
