using ResidualLab.Connections.Kernels;
using ResidualLab.Layers;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace ResidualLab.Connections;

// Axes: b batch, t position, s streams (n of them), d width (the last axis); r the residual map's logits.

/// <summary>
/// The n-stream update of mHC, x_{l+1} = H_res x_l + H_post^T F(LN(H_pre x_l)), with an H_res that is a
/// convex combination of permutation matrices and so exactly doubly stochastic, with no Sinkhorn iterations.
/// The per-token coefficients are mHC's: H~ = alpha * (RMSNorm(flatten(x_l)) phi) + b, H_pre = sigmoid(H~_pre),
/// H_post = 2 sigmoid(H~_post); H_res is the subclass's map of its r logits H~_res. Init as the reference code
/// of mHC-lite and KromHC: sublayer k favours stream k mod n in both its read and its write, b_pre = b_post =
/// +1 there and -1 elsewhere (H_pre 0.73 / 0.27, H_post 1.46 / 0.54), so that the n copies of the embedding
/// part ways from the first sublayer (with equal reads and writes they would stay copies, and H_res, which
/// maps copies to themselves, would get no gradient); b_res from the subclass, the identity's logit
/// res_gap above the others; alpha = 0.01 and phi ~ N(0, 1/(n d)) as this library's mHC.
/// </summary>
internal abstract class ConvexStreamMixing : Connection, IStreamMixing
{
    const double AlphaInit = 0.01;

    readonly nn.Module<Tensor, Tensor> norm;  // the sublayer's pre-norm
    readonly Parameter phi;                   // [n d, 2n + r]: pre | post | res
    readonly Parameter alpha_pre, alpha_post, alpha_res;
    readonly Parameter b_pre, b_post, b_res;
    readonly int n;

    protected ConvexStreamMixing(string name, ConnectionSite site, int n, Tensor resBias) : base(name)
    {
        this.n = n;
        long nd = (long)n * site.Width;
        norm = site.MakeNorm();
        phi = nn.Parameter(normal(0.0, 1.0 / Math.Sqrt(nd), [nd, 2 * n + resBias.shape[0]]));
        alpha_pre = nn.Parameter(full(1, AlphaInit));
        alpha_post = nn.Parameter(full(1, AlphaInit));
        alpha_res = nn.Parameter(full(1, AlphaInit));
        b_pre = nn.Parameter(Favouring(n, site.SublayerIndex % n));
        b_post = nn.Parameter(Favouring(n, site.SublayerIndex % n));
        b_res = nn.Parameter(resBias);
    }

    /// <summary>
    /// Forward FLOPs per token of the update with <paramref name="logits"/> = r residual logits, as
    /// <see cref="ConnectionFlops"/> counts: x phi, phi [n d, 2n + r] (2 n d (2n + r)), 1 / rms(x) (2 n d) and its
    /// product with the coefficients (2n + r); alpha H~ + b and sigmoid for H_pre (3 n), the same and x 2 for
    /// H_post (4 n), alpha H~ + b for H_res (2 r), then <paramref name="residualMapFlops"/> for H_res from its
    /// logits; the read H_pre x (2 n d), LN (7 d) and the write [H_res | H_post] [x; y] (2 n (n + 1) d).
    /// </summary>
    public static double ForwardFlops(int n, int d, int logits, double residualMapFlops)
    {
        int coefficients = 2 * n + logits;
        double maps = ConnectionFlops.MatVec((long)n * d, coefficients) + 2.0 * n * d + coefficients + 7.0 * n + 2.0 * logits + residualMapFlops;
        return maps + ConnectionFlops.WeightedSum(n, d) + ConnectionFlops.LayerNorm(d) + ConnectionFlops.StreamWrite(n, d);
    }

    /// <summary>Logits [n]: +1 at <paramref name="stream"/>, -1 elsewhere.</summary>
    static Tensor Favouring(int n, int stream)
    {
        var b = full(n, -1.0);
        b[stream].fill_(1);
        return b;
    }

    /// <summary>H_res [..., n, n] from its logits [..., r]: exactly doubly stochastic for any logits.</summary>
    public abstract Tensor ResidualMap(Tensor logits);

    /// <summary>The same map as <see cref="ResidualMap"/>, for the CPU kernel of the width step.</summary>
    internal abstract IResidualMap ResidualMapKernel { get; }

    public StreamMaps? LastMaps { get; private set; }

    public IEnumerable<Parameter> ResidualMixingParameters => [b_res];

    /// <summary>The per-token maps (H_pre [..., n], H_post [..., n], H_res [..., n, n]) for a stream [..., n, d], as tensor operations.</summary>
    public StreamMaps Maps(Tensor stream)
    {
        var flat = stream.flatten(-2);                                         // [..., n d]
        var coeffs = flat.matmul(phi) * RMSNorm.InverseRms(flat);               // [..., 2n + r]
        var pre = sigmoid(alpha_pre * coeffs[TensorIndex.Ellipsis, TensorIndex.Slice(0, n)] + b_pre);
        var post = 2 * sigmoid(alpha_post * coeffs[TensorIndex.Ellipsis, TensorIndex.Slice(n, 2 * n)] + b_post);
        var res = ResidualMap(alpha_res * coeffs[TensorIndex.Ellipsis, TensorIndex.Slice(2 * n, null)] + b_res);
        return new StreamMaps(pre, post, res);
    }

    public override Branch Prepare(Tensor stream, LayerContext ctx)
    {
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
            cat([b_pre, b_post, b_res]), ResidualMapKernel, RMSNorm.DefaultEps);
        return WidthStep.FromDepth(read, pre, depth, forDepthStep);
    }

    /// <summary>The width step as tensor operations differentiated by autograd (any device): the definition.</summary>
    public WidthStep WidthWithTensorOps(Tensor stream)
    {
        var maps = Maps(stream);
        return WidthStep.FromMaps(Streams.ReadWithTensorOps(maps.Pre, stream), maps, stream);
    }

    public override Tensor Combine(Tensor output, Branch branch, LayerContext ctx) =>
        Streams.Write(branch.Mix!, branch.Stream, output);
}
