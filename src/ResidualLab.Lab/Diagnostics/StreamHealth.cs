using ResidualLab.Connections;
using static TorchSharp.torch;

namespace ResidualLab.Diagnostics;

// Axes: ... leading axes (b batch, t position), s streams, d width.

/// <summary>
/// Measures of a multi-stream residual (Hyper-Connections, mHC and any <see cref="IStreamMixing"/> scheme)
/// that tell whether its n streams are used as n streams:
/// <list type="bullet">
/// <item>stream cosine: the mean over tokens and stream pairs of cos(H_i, H_j); 1 when the streams are copies
/// of one another (the scheme then computes a single-stream model n times);</item>
/// <item>H_res entropy: the mean over rows and tokens of -sum_j H_ij ln H_ij, in nats: ln n for the
/// uniform mixing J/n, 0 for a permutation;</item>
/// <item>distance from J/n: the Frobenius norm of the running product H_res(k) ... H_res(0) minus J/n, mean
/// over tokens: 0 when every stream has been averaged into every other (the product of doubly stochastic
/// maps drifts towards J/n with depth), sqrt(n - 1) for a permutation.</item>
/// </list>
/// And one measure of any residual stream, multi-stream or not, that tells whether its tokens stay apart:
/// <list type="bullet">
/// <item>token cosine: the mean over sequences and token pairs (i != j) of cos(x_i, x_j), the token representations
/// taken whole (all streams); 1 is rank collapse, every token the same vector up to scale (Dong et al. 2021, arXiv
/// 2103.03404; Noci et al. 2022, arXiv 2206.03126), which is what repeated attention averaging does without a skip.</item>
/// </list>
/// All are read without gradient and returned as 0-dim float64 tensors (one device sync for many).
/// </summary>
internal static class StreamHealth
{
    /// <summary>Mean cosine between distinct tokens of a sequence of <paramref name="stream"/> [b, t, ...]; needs t of at least 2.</summary>
    public static Tensor TokenCosine(Tensor stream)
    {
        using var _ = no_grad();
        long t = stream.shape[1];
        if (t < 2) throw new ArgumentException("the token cosine needs at least two tokens", nameof(stream));
        var unit = nn.functional.normalize(stream.to(ScalarType.Float64).flatten(2), p: 2, dim: -1); // [b, t, s d]
        var gram = unit.matmul(unit.transpose(-1, -2));                                                // [b, t, t]
        var offDiagonal = gram.sum([-2, -1]) - gram.diagonal(0, -2, -1).sum(-1);
        return (offDiagonal / (t * (t - 1))).mean();
    }

    /// <summary>Mean pairwise cosine similarity of the streams of <paramref name="stream"/> [..., s, d]; s must be at least 2.</summary>
    public static Tensor StreamCosine(Tensor stream)
    {
        using var _ = no_grad();
        long s = stream.shape[^2];
        if (s < 2) throw new ArgumentException("the stream cosine needs at least two streams", nameof(stream));
        var unit = nn.functional.normalize(stream.to(ScalarType.Float64), p: 2, dim: -1);
        var gram = unit.matmul(unit.transpose(-1, -2));          // [..., s, s]
        var offDiagonal = gram.sum([-2, -1]) - gram.diagonal(0, -2, -1).sum(-1);
        return (offDiagonal / (s * (s - 1))).mean();
    }

    /// <summary>Mean row entropy (nats) of H_res [..., s, s].</summary>
    public static Tensor RowEntropy(Tensor res)
    {
        using var _ = no_grad();
        var p = res.to(ScalarType.Float64).clamp_min(0);
        return -(p * p.clamp_min(1e-300).log()).sum(-1).mean();
    }

    /// <summary>The running products H_res(k) ... H_res(0) of <paramref name="maps"/> (first sublayer first), each [..., s, s].</summary>
    public static IEnumerable<Tensor> RunningProducts(IEnumerable<Tensor> maps)
    {
        Tensor? product = null;
        foreach (var m in maps)
        {
            var h = m.detach().to(ScalarType.Float64);
            product = product is null ? h : h.matmul(product);
            yield return product;
        }
    }

    /// <summary>Mean over tokens of ||P - J/n||_F for products P [..., s, s].</summary>
    public static Tensor DistanceFromUniform(Tensor product)
    {
        long s = product.shape[^1];
        return (product - 1.0 / s).pow(2).sum([-2, -1]).sqrt().mean();
    }
}
