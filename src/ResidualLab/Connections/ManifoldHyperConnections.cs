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
/// alpha_init; phi ~ N(0, 1/(n d)). The biases start at: b_pre = -ln(max(n - 1, 1)) (H_pre = 1/n: the
/// mean of the streams; 1/2 at n = 1), b_post = 0 (H_post = 1), b_res = res_diag on the diagonal and 0 off
/// it. res_diag = 0 (default): H_res starts as the uniform average, where 20 Sinkhorn iterations converge to
/// 1e-5; larger values lean H_res towards the identity (res_diag = 4: diagonal 0.95 at n = 4; exp(I) alone
/// gives only 0.475), but Sinkhorn then converges more slowly (measured: row errors ~1e-4 after 20).
/// With the streams equal at init, every choice computes the same function at init.
/// On the CPU the width step and the depth step run as fused kernels (MhcWidthStepKernel, StreamWriteKernel),
/// tested equal to these tensor operations in value and gradient.
/// Xie et al. 2025 (DeepSeek), "mHC: Manifold-Constrained Hyper-Connections" (arXiv 2512.24880).
/// </summary>
public sealed record ManifoldHyperConnectionsSpec(
    int N = ManifoldHyperConnectionsSpec.DefaultN,
    int SinkhornIterations = Sinkhorn.DefaultIterations,
    double AlphaInit = ManifoldHyperConnectionsSpec.DefaultAlphaInit,
    double ResDiag = 0) : ConnectionSpec
{
    public const int DefaultN = 4;
    public const double DefaultAlphaInit = 0.01;

    public override string Name => "mhc";
    public override Connection Build(ConnectionSite site) => new ManifoldHyperConnections(site, this);
    public override Tensor Expand(Tensor x0) => Streams.Expand(x0, N);
    public override Tensor Reduce(Tensor stream) => Streams.Reduce(stream);
    public override IReadOnlyDictionary<string, object> Options => new Dictionary<string, object>
    {
        ["n"] = (long)N, ["sinkhorn_iters"] = (long)SinkhornIterations, ["alpha_init"] = AlphaInit, ["res_diag"] = ResDiag,
    };
}

public sealed class ManifoldHyperConnections : Connection, IStreamMixing
{
    readonly nn.Module<Tensor, Tensor> norm;  // the sublayer's pre-norm
    readonly Parameter phi;                   // [n d, n + n + n^2]: pre | post | res
    readonly Parameter alpha_pre, alpha_post, alpha_res;
    readonly Parameter b_pre, b_post, b_res;
    readonly int n;
    readonly int iterations;

    public ManifoldHyperConnections(ConnectionSite site, ManifoldHyperConnectionsSpec spec) : base(nameof(ManifoldHyperConnections))
    {
        n = spec.N;
        iterations = spec.SinkhornIterations;
        long nd = (long)n * site.Width;
        norm = site.MakeNorm();
        phi = nn.Parameter(normal(0.0, 1.0 / Math.Sqrt(nd), [nd, 2 * n + n * n]));
        alpha_pre = nn.Parameter(full(1, spec.AlphaInit));
        alpha_post = nn.Parameter(full(1, spec.AlphaInit));
        alpha_res = nn.Parameter(full(1, spec.AlphaInit));
        b_pre = nn.Parameter(full(n, -Math.Log(Math.Max(n - 1, 1))));
        b_post = nn.Parameter(zeros(n));
        b_res = nn.Parameter(eye(n) * spec.ResDiag);
        RegisterComponents();
    }

    /// <summary>The per-token maps (H_pre [..., n], H_post [..., n], H_res [..., n, n]) for a stream [..., n, d].</summary>
    public (Tensor Pre, Tensor Post, Tensor Res) Maps(Tensor stream)
    {
        var flat = stream.flatten(-2);                                         // [..., n d]
        var coeffs = flat.matmul(phi) * RMSNorm.InverseRms(flat);               // [..., 2n + n^2]
        var pre = sigmoid(alpha_pre * coeffs[TensorIndex.Ellipsis, TensorIndex.Slice(0, n)] + b_pre);
        var post = 2 * sigmoid(alpha_post * coeffs[TensorIndex.Ellipsis, TensorIndex.Slice(n, 2 * n)] + b_post);
        var resLogits = alpha_res * coeffs[TensorIndex.Ellipsis, TensorIndex.Slice(2 * n, null)].unflatten(coeffs.dim() - 1, [n, n]) + b_res;
        return (pre, post, Sinkhorn.Project(resLogits, iterations));
    }

    public StreamMaps? LastMaps { get; private set; }

    public override Branch Prepare(Tensor stream, LayerContext ctx)
    {
        var (read, maps) = WidthStep(stream);
        LastMaps = maps;
        var depth = cat([maps.Res, maps.Post.unsqueeze(-1)], -1); // [..., s, s + 1]
        return new(norm.call(read), stream, depth);
    }

    /// <summary>
    /// The read H_pre x_l [..., d] and the maps: on the CPU one fused kernel (<see cref="MhcWidthStepKernel"/>),
    /// elsewhere <see cref="WidthStepWithTensorOps"/>; the same function.
    /// </summary>
    public (Tensor Read, StreamMaps Maps) WidthStep(Tensor stream)
    {
        if (!MhcWidthStepKernel.Applies(stream, phi)) return WidthStepWithTensorOps(stream);
        var (read, pre, post, res) = MhcWidthStepKernel.Run(stream, phi, cat([alpha_pre, alpha_post, alpha_res]),
            cat([b_pre, b_post, b_res.flatten()]), iterations, RMSNorm.DefaultEps);
        return (read, new StreamMaps(pre, post, res));
    }

    /// <summary>The width step as tensor operations differentiated by autograd (any device).</summary>
    public (Tensor Read, StreamMaps Maps) WidthStepWithTensorOps(Tensor stream)
    {
        var (pre, post, res) = Maps(stream);
        return (Streams.ReadWithTensorOps(pre, stream), new StreamMaps(pre, post, res));
    }

    public override Tensor Combine(Tensor output, Branch branch, LayerContext ctx) =>
        Streams.Write(branch.Mix!, branch.Stream, output);
}
