using ResidualLab.Connections.Kernels;
using static TorchSharp.torch;

namespace ResidualLab.Connections;

// Axes: b batch, t position, s streams (n = 2^K of them), d width (the last axis); K factors of 2 x 2.

/// <summary>
/// KromHC: mHC with H_res = U_1 (x) U_2 (x) ... (x) U_K, a Kronecker product of K = log2(n) doubly
/// stochastic 2 x 2 factors U_k = [[p_k, 1 - p_k], [1 - p_k, p_k]], (p_k, 1 - p_k) = softmax of two logits:
/// each factor is a convex combination of the two 2 x 2 permutations, and a Kronecker product of doubly
/// stochastic matrices is doubly stochastic, so H_res is exactly so, with 2K logits instead of n^2 or n!.
/// Wang et al. 2026, "KromHC" (arXiv 2601.21579); reference code wz1119/KromHC (factors of 2 for n a power
/// of two, the case built here). Each identity logit starts res_gap above the swap's (reference: 0 and -8).
/// H_pre, H_post and their init as in <see cref="ConvexStreamMixing"/>.
/// On the CIFAR ResNet: streams reduced to their mean per stage.
/// </summary>
public sealed record KromHcScheme(int N = KromHcScheme.DefaultN, double ResGap = MhcLiteScheme.DefaultResGap) : ConnectionScheme
{
    /// <summary>The default expansion rate (number of streams).</summary>
    public const int DefaultN = 4;

    /// <summary>The expansion rate n, a power of two in [1, 64].</summary>
    public int N { get; } = SchemeArguments.InRange(N, 1, 64, "kromhc", "n") is var n && (n & (n - 1)) == 0 ? n
        : throw new ArgumentOutOfRangeException("n", $"kromhc: n must be a power of two, got {N}");

    /// <summary>Initial logit of each factor's identity above its swap's, in [-100, 100].</summary>
    public double ResGap { get; } = SchemeArguments.InRange(ResGap, -100, 100, "kromhc", "res_gap");

    /// <inheritdoc/>
    public override string Name => "kromhc";
    /// <inheritdoc/>
    public override Connection Build(ConnectionSite site) => new KromHc(site, N, ResGap);
    /// <summary>
    /// <see cref="ConvexStreamMixing.ForwardFlops"/> with r = 2K logits (K = log2 n): K two-way softmaxes (6 K),
    /// 1 - p_k (K), and the Kronecker products, each a product per entry of the growing matrix: 4^2 + ... + 4^K.
    /// </summary>
    internal override double ForwardFlops(ConnectionSite site)
    {
        int factors = Factors(N);
        double kronecker = Enumerable.Range(2, Math.Max(0, factors - 1)).Sum(k => Math.Pow(4, k));
        return ConvexStreamMixing.ForwardFlops(N, site.Width, 2 * factors, 7.0 * factors + kronecker);
    }

    /// <summary>The sum of the n streams at the output.</summary>
    internal override double StreamFlops(int width) => ConnectionFlops.StreamSum(N, width);
    /// <inheritdoc/>
    public override Tensor Expand(Tensor x0) => Streams.Expand(x0, N);
    /// <inheritdoc/>
    public override Tensor Reduce(Tensor stream) => Streams.Reduce(stream);
    /// <inheritdoc/>
    public override IReadOnlyDictionary<string, object> Options =>
        new Dictionary<string, object> { ["n"] = (long)N, ["res_gap"] = ResGap };

    /// <summary>log2(n) for a power of two; otherwise an error naming the option.</summary>
    public static int Factors(int n) =>
        n >= 1 && (n & (n - 1)) == 0 ? System.Numerics.BitOperations.Log2((uint)n)
            : throw new ArgumentException($"connection.n must be a power of two for kromhc, got {n}");
}

internal sealed class KromHc : ConvexStreamMixing
{
    readonly int factors;

    public KromHc(ConnectionSite site, int n, double resGap)
        : base(nameof(KromHc), site, n, Bias(KromHcScheme.Factors(n), resGap))
    {
        factors = KromHcScheme.Factors(n);
        RegisterComponents();
    }

    internal override IResidualMap ResidualMapKernel => new KroneckerMap(factors);

    /// <summary>[identity, swap] logits per factor, flattened: [2K].</summary>
    static Tensor Bias(int factors, double gap) => tensor(Enumerable.Range(0, factors).SelectMany(_ => new[] { 0.0, -gap }).ToArray(),
        dtype: ScalarType.Float32);

    public override Tensor ResidualMap(Tensor logits)
    {
        var lead = logits.shape[..^1];
        if (factors == 0) return ones([.. lead, 1, 1], dtype: logits.dtype, device: logits.device);
        var p = softmax(logits.unflatten(logits.dim() - 1, [factors, 2]), -1).select(-1, 0); // [..., K]
        Tensor? result = null;
        for (int k = 0; k < factors; k++)
        {
            var pk = p.select(-1, k);
            var q = 1 - pk;
            var u = stack([stack([pk, q], -1), stack([q, pk], -1)], -2);                      // [..., 2, 2]
            if (result is null) { result = u; continue; }
            long a = result.shape[^1];
            result = (result.unsqueeze(-1).unsqueeze(-3) * u.unsqueeze(-2).unsqueeze(-4))     // [..., a, 2, a, 2]
                .reshape([.. lead, 2 * a, 2 * a]);
        }
        return result!;
    }
}
