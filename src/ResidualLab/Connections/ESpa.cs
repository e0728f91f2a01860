using static TorchSharp.torch;

namespace ResidualLab.Connections;

// Axes: t, s positions (0-based); l layer (1-based); L layers. a = exp(-gamma_l), b = exp(-gamma_(l-1)).

/// <summary>
/// E-SPA, exponential signal preserving attention (He et al., ICLR 2023, arXiv 2302.10322): a vanilla Transformer (no skips,
/// no norms) whose attention at layer l equals A_l = L_l L_(l-1)^-1 at init (<see cref="SignalPreservingScheme"/>), for the
/// exponentially decaying target kernels
/// <code>
/// (Sigma_l)_ts = exp(-gamma_l |t - s|),   1 - exp(-2 gamma_l) = (1 - exp(-2 gamma_L))^(l / L),   gamma_0 = infinity (Sigma_0 = I)
/// </code>
/// the covariance of a stationary Ornstein-Uhlenbeck (AR(1)) process, whose innovation std sqrt(1 - a_l^2) the schedule makes
/// geometric in l: every layer's diagonal A_l[t, t] = (1 - exp(-2 gamma_L))^(1 / 2L) for t &gt;= 1, the same in every layer, and
/// the final target exp(-gamma_L |t - s|) does not depend on L. A_l in closed form (r = sqrt(1 - a^2) / sqrt(1 - b^2), b = 0 for l = 1):
/// <code>
/// A_l[0, 0] = 1,   A_l[t, 0] = a^(t-1) (a - b r),   A_l[t, s] = r a^(t-s-1) (a - b)  (1 &lt;= s &lt; t),   A_l[t, t] = r  (t &gt;= 1)
/// </code>
/// (derived here and checked against the float64 Cholesky construction); every entry on and below the diagonal is positive
/// because a &gt; b, and log A_l is taken from the same closed form, so entries that underflow (about e^-55 at layer 1 of 24,
/// T = 64) stay finite in the bias. Reconstructed, not read in the paper: the schedule and gamma_L = 0.005 (both from the
/// re-implementation richardcepka/SimplEsT-ViT); see <see cref="SignalPreservingScheme"/> for the rest.
/// </summary>
public sealed record ESpaScheme : SignalPreservingScheme
{
    /// <summary>The final decay gamma_L of the re-implementation the schedule comes from.</summary>
    public const double DefaultGamma = 0.005;

    /// <summary>E-SPA with final decay <paramref name="gamma"/> in [0.0001, 10] and TAT target <paramref name="eta"/>.</summary>
    public ESpaScheme(double gamma = DefaultGamma, double eta = Layers.TailoredActivation.DefaultEta) : base(eta, "e-spa") =>
        Gamma = SchemeArguments.InRange(gamma, 0.0001, 10, "e-spa", "gamma");

    /// <summary>The final decay gamma_L of the target kernel exp(-gamma_L |t - s|).</summary>
    public double Gamma { get; }

    /// <inheritdoc/>
    public override string Name => "e-spa";

    /// <summary>gamma_l of layer <paramref name="layer"/> (0: infinity) in a model of <paramref name="depth"/> layers.</summary>
    public double Decay(int layer, int depth) => layer == 0
        ? double.PositiveInfinity
        : -0.5 * Math.Log(1 - Math.Pow(1 - Math.Exp(-2 * Gamma), (double)layer / depth));

    /// <inheritdoc/>
    public override CausalPrior Prior(int layer, int depth) => new ExponentialKernelPrior(Decay(layer, depth), Decay(layer - 1, depth));

    /// <inheritdoc/>
    public override Tensor Kernel(int layer, int depth, int length)
    {
        double gamma = Decay(layer, depth);
        var t = arange(length, dtype: ScalarType.Float64);
        var distance = (t.unsqueeze(1) - t.unsqueeze(0)).abs();
        return double.IsPositiveInfinity(gamma) ? eye(length, dtype: ScalarType.Float64) : (distance * -gamma).exp();
    }

    /// <inheritdoc/>
    public override IReadOnlyDictionary<string, object> Options => new Dictionary<string, object> { ["gamma"] = Gamma, ["eta"] = Eta };
}

/// <summary>E-SPA's A_l between the kernels of decays <paramref name="Now"/> = gamma_l and <paramref name="Before"/> = gamma_(l-1), in closed form.</summary>
internal sealed record ExponentialKernelPrior(double Now, double Before) : CausalPrior
{
    public override Tensor Matrix(int length) => From(length, log: false);

    public override Tensor Log(int length) => From(length, log: true);

    double LogEntry(int t, int s)
    {
        double a = Math.Exp(-Now), b = double.IsPositiveInfinity(Before) ? 0 : Math.Exp(-Before);
        double r = Math.Sqrt(1 - a * a) / Math.Sqrt(1 - b * b);
        if (t == 0) return 0;                                                     // A[0, 0] = 1
        if (s == t) return Math.Log(r);
        if (s == 0) return (t - 1) * Math.Log(a) + Math.Log(a - b * r);
        return Math.Log(r) + (t - s - 1) * Math.Log(a) + Math.Log(a - b);
    }

    /// <summary>P or log P, [T, T] float64; above the diagonal 0 for P, −∞ for log P.</summary>
    Tensor From(int length, bool log)
    {
        var values = new double[length * length];
        for (int t = 0; t < length; t++)
            for (int s = 0; s < length; s++)
                values[t * length + s] = s > t ? (log ? double.NegativeInfinity : 0) : log ? LogEntry(t, s) : Math.Exp(LogEntry(t, s));
        return tensor(values, [length, length], ScalarType.Float64);
    }
}
