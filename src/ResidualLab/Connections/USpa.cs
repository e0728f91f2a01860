using static TorchSharp.torch;

namespace ResidualLab.Connections;

// Axes: t, s positions (0-based); l layer (1-based); L layers.

/// <summary>
/// U-SPA, uniform signal preserving attention (He et al., ICLR 2023, arXiv 2302.10322): a vanilla Transformer (no skips,
/// no norms) whose attention at layer l equals A_l = L_l L_(l-1)^-1 at init (<see cref="SignalPreservingScheme"/>), for
/// target kernels in which every pair of tokens is equally correlated:
/// <code>
/// Sigma_l = (1 - rho_l) I + rho_l 1 1^T,   1 - rho_l = (1 - rho_L)^(l / L),   rho_0 = 0 (Sigma_0 = I)
/// </code>
/// "Uniform" names the kernel, not the attention matrix: A_l is not the uniform causal matrix. A_l is built in float64 by
/// Cholesky factors and a triangular solve; its entries on and below the diagonal are positive when rho_l &gt; rho_(l-1)
/// (checked numerically for these schedules; the smallest entry at T = 64 is about 5e-6), so its logarithm is the bias.
/// Reconstructed entirely here (the paper's rule and rho_L could not be read): the schedule, built on E-SPA's principle that
/// the asymptotic self-weight A_l[t, t] -&gt; sqrt((1 - rho_l) / (1 - rho_(l-1))) be equal in every layer, and rho_L = 0.8, the
/// mean off-diagonal correlation of E-SPA's final target exp(-0.005 |t - s|) at the lab's block size 128 (0.815), so that
/// the two arms end with comparable average correlation. See <see cref="SignalPreservingScheme"/> for the rest.
/// </summary>
public sealed record USpaScheme : SignalPreservingScheme
{
    /// <summary>The final correlation rho_L chosen here.</summary>
    public const double DefaultRho = 0.8;

    /// <summary>U-SPA with final correlation <paramref name="rho"/> in [0.01, 0.99] and TAT target <paramref name="eta"/>.</summary>
    public USpaScheme(double rho = DefaultRho, double eta = Layers.TailoredActivation.DefaultEta) : base(eta, "u-spa") =>
        Rho = SchemeArguments.InRange(rho, 0.01, 0.99, "u-spa", "rho");

    /// <summary>The final correlation rho_L of every pair of tokens.</summary>
    public double Rho { get; }

    /// <inheritdoc/>
    public override string Name => "u-spa";

    /// <summary>rho_l of layer <paramref name="layer"/> (0: 0) in a model of <paramref name="depth"/> layers.</summary>
    public double Correlation(int layer, int depth) => 1 - Math.Pow(1 - Rho, (double)layer / depth);

    /// <inheritdoc/>
    public override CausalPrior Prior(int layer, int depth) =>
        new CholeskyPrior(t => Kernel(layer, depth, t), t => Kernel(layer - 1, depth, t));

    /// <inheritdoc/>
    public override Tensor Kernel(int layer, int depth, int length)
    {
        double rho = Correlation(layer, depth);
        return full(length, length, rho, dtype: ScalarType.Float64) + eye(length, dtype: ScalarType.Float64) * (1 - rho);
    }

    /// <inheritdoc/>
    public override IReadOnlyDictionary<string, object> Options => new Dictionary<string, object> { ["rho"] = Rho, ["eta"] = Eta };
}
