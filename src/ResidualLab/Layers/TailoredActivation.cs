namespace ResidualLab.Layers;

// c: cosine between two inputs of a layer (the kernel's off-diagonal entry at q = 1); s: the leaky ReLU's negative slope.

/// <summary>
/// TAT for leaky ReLU (Zhang, Botev and Martens, ICLR 2022, "Deep Learning without Shortcuts: Shaping the Kernel
/// with Tailored Rectifiers", arXiv 2203.08120; reference implementation google-deepmind/dks,
/// <c>dks/base/activation_transform.py</c>). The transformed activation ("TReLU") is
///   phi(x) = sqrt(2 / (1 + s^2)) · max(x, s x),
/// whose output scale makes its Q map the identity (E[phi(sqrt(q) z)^2] = q for every q), and whose local C map is
///   C_s(c) = c + (1 − s)^2 / (π (1 + s^2)) · (sqrt(1 − c^2) − c arccos c)          (dks <c>_leaky_relu_cmap</c>),
/// with C_s(1) = 1 and C_s'(1) = 1 for every s. A network's C map at 0 is the "subnetwork maximising function" M of the
/// network applied to C_s: for a plain chain of L leaky ReLUs (linear layers with scaled-orthogonal weights in between
/// do not count) M(x, r) = r^L(x). TAT picks the slope s in [0, 1] with M(0, C_s) = eta (dks <c>c_val_0_target</c>,
/// default 0.9), by dks's bisection on 1 − M(0, C_s) = 1 − eta (<c>_solve_increasing</c>: start at 0.5 in [0, 1],
/// stop when the function value is within 1e-8 of the target, at most 100 evaluations).
/// Where eta is out of reach (even ReLU, s = 0, the most non-linear member, gives M(0, C_0) &lt; eta: a chain of 12 or
/// fewer at eta = 0.9) dks raises; here <see cref="Solve(double, Func{double, Func{double, double}, double})"/> returns
/// s = 0 with <see cref="TailoredLeakyRelu.Reachable"/> false and the C(0) it achieves, and the caller decides.
/// </summary>
public static class TailoredActivation
{
    /// <summary>TAT's default target C_f(0) for leaky ReLU networks (dks <c>c_val_0_target</c>).</summary>
    public const double DefaultEta = 0.9;

    /// <summary>dks's tolerance on the bisected function's value.</summary>
    const double Tolerance = 1e-8;

    /// <summary>dks's limit on the bisection's evaluations.</summary>
    const int MaxEvaluations = 100;

    /// <summary>The local C map C_s(c) of the TReLU with negative slope <paramref name="slope"/> (c clamped to [−1, 1]).</summary>
    public static double LeakyReluCMap(double c, double slope)
    {
        c = Math.Clamp(c, -1.0, 1.0);
        return c + (1 - slope) * (1 - slope) / (Math.PI * (1 + slope * slope)) * (Math.Sqrt(1 - c * c) - c * Math.Acos(c));
    }

    /// <summary>The output scale sqrt(2 / (1 + s^2)) that makes the TReLU's Q map the identity.</summary>
    public static double OutputScale(double slope) => Math.Sqrt(2.0 / (1.0 + slope * slope));

    /// <summary>The subnetwork maximising function of a plain chain of <paramref name="nonlinearLayers"/> activations: r applied that many times.</summary>
    public static Func<double, Func<double, double>, double> Chain(int nonlinearLayers)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(nonlinearLayers);
        return (x, r) =>
        {
            for (int i = 0; i < nonlinearLayers; i++) x = r(x);
            return x;
        };
    }

    /// <summary>The TReLU of a plain chain of <paramref name="nonlinearLayers"/> activations with C_f(0) = <paramref name="eta"/>.</summary>
    /// <exception cref="ArgumentOutOfRangeException">eta outside [0, 1] or a negative layer count.</exception>
    public static TailoredLeakyRelu ForChain(int nonlinearLayers, double eta = DefaultEta) => Solve(eta, Chain(nonlinearLayers));

    /// <summary>
    /// The TReLU whose network C map at 0, <paramref name="maxSubnetwork"/>(0, C_s), equals <paramref name="eta"/>, by dks's bisection.
    /// </summary>
    /// <param name="eta">The target C_f(0), in [0, 1].</param>
    /// <param name="maxSubnetwork">dks's M(x, r): the largest value over the network's subnetworks of the composed maps,
    /// each non-linear layer one application of r (see <see cref="Chain"/>); increasing in r.</param>
    /// <exception cref="ArgumentOutOfRangeException">eta outside [0, 1].</exception>
    /// <exception cref="InvalidOperationException">The bisection did not meet dks's tolerance in its 100 evaluations.</exception>
    public static TailoredLeakyRelu Solve(double eta, Func<double, Func<double, double>, double> maxSubnetwork)
    {
        if (!(eta >= 0 && eta <= 1)) throw new ArgumentOutOfRangeException(nameof(eta), $"eta must be in [0, 1], got {eta}");
        double C0(double slope) => maxSubnetwork(0.0, c => LeakyReluCMap(c, slope));
        double relu = C0(0);
        if (relu < eta) return new TailoredLeakyRelu(0, OutputScale(0), relu, eta, Reachable: false);

        // dks _solve_increasing(fn = 1 − M(0, C_s), target = 1 − eta, input = 0.5, min = 0, max = 1).
        double x = 0.5, lo = 0, hi = 1, target = 1 - eta;
        for (int i = 0; i < MaxEvaluations; i++)
        {
            double value = 1 - C0(x);
            if (Math.Abs(value - target) < Tolerance) return new TailoredLeakyRelu(x, OutputScale(x), C0(x), eta, Reachable: true);
            if (value > target) { hi = x; x = (x + lo) / 2; }
            else { lo = x; x = (x + hi) / 2; }
        }
        throw new InvalidOperationException($"the leaky ReLU slope for C_f(0) = {eta} was not found in {MaxEvaluations} bisection steps");
    }
}

/// <summary>A transformed leaky ReLU phi(x) = <paramref name="OutputScale"/> · max(x, <paramref name="NegativeSlope"/> x) and what it achieves.</summary>
/// <param name="NegativeSlope">s in [0, 1].</param>
/// <param name="OutputScale">sqrt(2 / (1 + s^2)).</param>
/// <param name="C0">The network's C map at 0 with this slope (eta when reachable).</param>
/// <param name="Eta">The target asked for.</param>
/// <param name="Reachable">False when even ReLU (s = 0) stays below eta: then s = 0 and <paramref name="C0"/> is the most it reaches.</param>
public sealed record TailoredLeakyRelu(double NegativeSlope, double OutputScale, double C0, double Eta, bool Reachable);
