using static TorchSharp.torch;

namespace ResidualLab.Layers;

// Layouts as PyTorch's: a convolution's weight W is [c_out, c_in, k, k], a linear layer's [out, in], y = W x.
// H is a Haar-orthogonal matrix, s the scale, g the gain, m = (k - 1) / 2 the centre tap.

/// <summary>
/// Delta-orthogonal initialisation of convolutions and scaled-orthogonal initialisation of linear layers.
/// Xiao, Bahri, Sohl-Dickstein, Schoenholz and Pennington, ICML 2018, "Dynamical Isometry and a Mean Field Theory
/// of CNNs: How to Train 10,000-Layer Vanilla Convolutional Neural Networks" (arXiv 1806.05393), Algorithm 2; with
/// the "scaled uniform orthogonal" rescale of DKS/TAT (Martens et al. 2021, arXiv 2110.01765; google-deepmind/dks,
/// <c>parameter_sampling_functions.py</c>).
/// <code>
/// conv:   W[:, :, i, j] = 0 for (i, j) != (m, m),   W[:, :, m, m] = s H
/// linear: W = s H
/// H: [out x in], orthonormal columns (H^T H = I) when out >= in, orthonormal rows (H H^T = I) when out &lt; in
/// s = g max(sqrt(out / in), 1)
/// </code>
/// <para>
/// With a delta kernel a stride-1 "same" 3x3 convolution is a 1x1 convolution and a stride-2 one a 1x1 on the input
/// taken at (2i, 2j): at initialisation a delta-orthogonal CNN is the same orthogonal MLP at every surviving location,
/// so it preserves the norm of every location's channel vector exactly (out >= in) and its mean-field signal
/// propagation is that of the MLP. H is sampled as QR of a Gaussian matrix, signs fixed by diag(R) (Haar), in
/// float64, then cast.
/// </para>
/// <para>
/// Defaults and open choices, named. The rescale sqrt(out / in) for widening layers (the stride-2 channel-doubling
/// convolutions) is DKS's: it keeps q exactly; Xiao et al.'s own construction has none (q halves at each doubling)
/// and refuses out &lt; in, which here gets orthonormal rows and s = g (q kept in expectation). <c>rescale: false</c>
/// gives Xiao et al.'s variant. The gain g compensates the activation that follows the layer: sqrt(2) for ReLU
/// (<see cref="ReluGain"/>: 2 E[relu(sqrt(q) z)^2] = q), 1 for TAT's transformed leaky ReLU (its scale is inside the
/// activation) and for a linear output. A convolution reading a single-channel image would give every location a
/// multiple of one vector under a delta kernel, so the lab's first convolution takes the non-delta rule on its
/// flattened kernel (<c>delta: false</c>, fan-in c_in k k). Biases start at zero (the caller's part).
/// </para>
/// </summary>
internal static class DeltaOrthogonal
{
    /// <summary>Critical gain for ReLU: sigma_w^2 = 2.</summary>
    public static readonly double ReluGain = Math.Sqrt(2);

    /// <summary>s = gain * max(sqrt(out / in), 1) with the rescale, gain without.</summary>
    public static double Scale(long outDim, long inDim, double gain, bool rescale = true) =>
        rescale ? gain * Math.Max(Math.Sqrt((double)outDim / inDim), 1.0) : gain;

    /// <summary>Scaled-orthogonal weights for a linear layer's [out, in] weight, in place.</summary>
    public static void Linear(Tensor weight, double gain, bool rescale = true)
    {
        if (weight.dim() != 2) throw new ArgumentException($"a linear layer's weight is [out, in], got shape [{string.Join(", ", weight.shape)}]");
        long outDim = weight.shape[0], inDim = weight.shape[1];
        using var _ = no_grad();
        using var h = Haar(outDim, inDim);
        weight.copy_(h.mul(Scale(outDim, inDim, gain, rescale)));
    }

    /// <summary>
    /// A convolution's [c_out, c_in, k, k] weight, in place: delta-orthogonal (odd k; all taps but the centre zero), or
    /// with <paramref name="delta"/> false, scaled-orthogonal on the kernel flattened to [c_out, c_in k k].
    /// </summary>
    public static void Conv(Tensor weight, double gain, bool delta = true, bool rescale = true)
    {
        if (weight.dim() != 4) throw new ArgumentException($"a convolution's weight is [c_out, c_in, kh, kw], got shape [{string.Join(", ", weight.shape)}]");
        long outDim = weight.shape[0], inDim = weight.shape[1], kh = weight.shape[2], kw = weight.shape[3];
        using var _ = no_grad();
        if (!delta)
        {
            long fanIn = inDim * kh * kw;
            using var flat = Haar(outDim, fanIn);
            weight.copy_(flat.mul(Scale(outDim, fanIn, gain, rescale)).reshape(outDim, inDim, kh, kw));
            return;
        }
        if (kh % 2 == 0 || kw % 2 == 0) throw new ArgumentException($"a delta kernel needs odd spatial sizes (a centre tap), got {kh}x{kw}");
        using var h = Haar(outDim, inDim);
        weight.zero_();
        weight[.., .., kh / 2, kw / 2].copy_(h.mul(Scale(outDim, inDim, gain, rescale)));
    }

    /// <summary>A Haar-distributed [rows, cols] matrix with orthonormal columns (rows >= cols) or rows (rows &lt; cols), float64.</summary>
    static Tensor Haar(long rows, long cols)
    {
        using var scope = NewDisposeScope();
        bool tall = rows >= cols;
        var a = randn(tall ? rows : cols, tall ? cols : rows, dtype: ScalarType.Float64);
        var (q, r) = linalg.qr(a);                                   // reduced: q [m, p], r [p, p]
        q = q.mul(r.diagonal().sign().unsqueeze(0));                  // Haar: the sign of diag(R) fixed to +
        return (tall ? q : q.t()).contiguous().MoveToOuterDisposeScope();
    }
}
