using ResidualLab.Connections.Kernels;
using static TorchSharp.torch;

namespace ResidualLab.Connections;

// Axes: b batch, t position, s streams (n of them), d width (the last axis); r = n! permutations.

/// <summary>
/// mHC-lite: mHC with H_res = sum_r a_r P_r over all n! permutation matrices P_r, a = softmax(H~_res):
/// a convex combination of permutations, so exactly doubly stochastic (Birkhoff-von Neumann), no Sinkhorn.
/// Yang et al. 2026, "mHC-lite" (arXiv 2601.05732); reference code FFTYYY/mhc-lite. The identity's logit
/// starts res_gap above the other n! - 1 (reference: 0 against -8, H_res = 0.992 I + ... at n = 4).
/// H_pre, H_post and their init as in <see cref="ConvexStreamMixing"/>. n is at most 6 (720 permutations).
/// On the CIFAR ResNet: streams reduced to their mean per stage.
/// </summary>
public sealed record MhcLiteScheme(int N = MhcLiteScheme.DefaultN, double ResGap = MhcLiteScheme.DefaultResGap) : ConnectionScheme
{
    /// <summary>The default expansion rate (number of streams).</summary>
    public const int DefaultN = 4;
    /// <summary>The largest expansion rate: H_res mixes n! permutation matrices.</summary>
    public const int MaxN = 6;
    /// <summary>The default initial logit of the identity above the other permutations'.</summary>
    public const double DefaultResGap = 8;

    /// <summary>The expansion rate n, in [1, <see cref="MaxN"/>].</summary>
    public int N { get; } = SchemeArguments.InRange(N, 1, MaxN, "mhc-lite", "n");
    /// <summary>Initial logit of the identity above the other permutations', in [-100, 100].</summary>
    public double ResGap { get; } = SchemeArguments.InRange(ResGap, -100, 100, "mhc-lite", "res_gap");

    /// <inheritdoc/>
    public override string Name => "mhc-lite";
    /// <inheritdoc/>
    public override Connection Build(ConnectionSite site) => new MhcLite(site, N, ResGap);
    /// <summary>
    /// <see cref="ConvexStreamMixing.ForwardFlops"/> with r = n! logits and H_res = softmax(logits) [n!] times
    /// the permutations [n!, n^2]: 3 n! for the softmax (exp, sum, divide) and 2 n! n^2 for the product.
    /// </summary>
    internal override double ForwardFlops(ConnectionSite site)
    {
        int permutations = Enumerable.Range(1, N).Aggregate(1, (f, k) => f * k);
        return ConvexStreamMixing.ForwardFlops(N, site.Width, permutations, 3.0 * permutations + 2.0 * permutations * N * N);
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
}

internal sealed class MhcLite : ConvexStreamMixing
{
    readonly Tensor permutations; // [n!, n n], the identity first
    readonly PermutationMap kernelMap;

    public MhcLite(ConnectionSite site, int n, double resGap)
        : base(nameof(MhcLite), site, n, IdentityFirst(Factorial(n), resGap))
    {
        permutations = PermutationMatrices(n).flatten(1);
        kernelMap = new PermutationMap(n, PermutationMap.Table(n));
        RegisterComponents();
    }

    internal override IResidualMap ResidualMapKernel => kernelMap;

    public override Tensor ResidualMap(Tensor logits)
    {
        var weights = softmax(logits, -1);                                             // [..., n!]
        int n = (int)Math.Round(Math.Sqrt(permutations.shape[1]));
        return weights.matmul(permutations.to(weights.dtype)).unflatten(weights.dim() - 1, [n, n]);
    }

    static int Factorial(int n) => n <= 1 ? 1 : n * Factorial(n - 1);

    /// <summary>Logits [count]: 0 for the first (the identity), -gap for the rest.</summary>
    internal static Tensor IdentityFirst(int count, double gap)
    {
        var b = full(count, -gap);
        b[0].fill_(0);
        return b;
    }

    /// <summary>All n! permutation matrices [n!, n, n] in lexicographic order of the permutations (identity first).</summary>
    public static Tensor PermutationMatrices(int n)
    {
        var table = PermutationMap.Table(n);
        int count = table.Length / n;
        var matrices = new float[count * n * n];
        for (int p = 0; p < count; p++)
            for (int row = 0; row < n; row++)
                matrices[(p * n + row) * n + table[p * n + row]] = 1;
        return tensor(matrices, [count, n, n]);
    }
}
