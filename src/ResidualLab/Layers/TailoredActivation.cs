using System.Globalization;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace ResidualLab.Layers;

// Symbols: c the cosine of two inputs' pre-activation vectors (uncentred: <a, b> / (|a| |b|)); q = |h|^2 / n
// the per-unit second moment; alpha the leaky ReLU's negative slope; eta the target; L the number of
// activation functions on the network's longest input-to-output path.

/// <summary>
/// TAT for leaky ReLUs: a network without shortcuts or normalisation whose negative slope is solved from its
/// depth, so that its C map at initialisation meets a target. Zhang, Botev and Martens, ICLR 2022, "Deep
/// Learning without Shortcuts: Shaping the Kernel with Tailored Rectifiers" (arXiv 2203.08120), with the
/// reference implementation google-deepmind/dks (<c>dks/base/activation_transform.py</c>).
/// <para>
/// The transformed activation ("TReLU") is phi(x) = sqrt(2 / (1 + alpha^2)) * (x if x >= 0 else alpha x): the
/// scale makes its Q map the identity for every q, because E[lrelu_alpha(sqrt(q) z)^2] = q (1 + alpha^2) / 2.
/// Its local C map (dks <c>_leaky_relu_cmap</c>) is
/// <code>C_alpha(c) = c + (1 - alpha)^2 / (pi (1 + alpha^2)) * (sqrt(1 - c^2) - c arccos c)</code>
/// with C_alpha(1) = 1, C_alpha'(1) = 1 for every alpha, C_alpha(c) >= c, C_alpha(0) = (1 - alpha)^2 / (pi (1 + alpha^2));
/// alpha = 1 is the identity map, alpha = 0 ReLU's arc-cosine map.
/// </para>
/// <para>
/// The network's C map composes the local maps of its activations: linear layers with scaled-orthogonal weights
/// (and global average pooling, strides, the classifier) leave q and c unchanged, so a plain chain of L
/// activations has C_f = C_alpha^{oL}. TAT solves max over subnetworks f of C_f(0) = eta for alpha in [0, 1]; dks
/// asks for the "subnetwork maximizing function" M(x, r), the largest value over the network's subnetworks of
/// its composed map r applied to x (for a chain: r applied L times). Default eta = 0.9 (dks
/// <c>c_val_0_target</c>). The solve is dks's <c>_solve_increasing</c> bisection, value-for-value: start at
/// alpha = 0.5 in [0, 1], stop when |(1 - M(0, C_alpha)) - (1 - eta)| &lt; 1e-8, at most 100 evaluations.
/// </para>
/// <para>
/// Open choices, named: which layers count in L is the caller's (the lab counts activations, L = depth - 1 for its
/// plain CNN and MLP); a net too shallow to reach eta (even ReLU's alpha = 0 gives C_L(0) &lt; eta) is refused, as dks
/// refuses it, instead of being clamped. TAT assumes no normalisation layers, zero biases and scaled-orthogonal
/// (delta for convolutions) weights of gain 1, the scale living inside the activation.
/// </para>
/// </summary>
public static class TailoredActivation
{
    /// <summary>The paper's default target for C_f(0) (dks <c>tat_params["c_val_0_target"]</c>).</summary>
    public const double DefaultEta = 0.9;

    /// <summary>Bisection tolerance on the function value, as in dks.</summary>
    const double Tolerance = 1e-8;

    /// <summary>Function evaluations the bisection may take, as in dks.</summary>
    const int MaxEvaluations = 100;

    /// <summary>The local C map of the scaled leaky ReLU of slope <paramref name="slope"/>; <paramref name="c"/> is clamped to [-1, 1].</summary>
    public static double LeakyReluCMap(double c, double slope)
    {
        c = Math.Clamp(c, -1.0, 1.0);
        double a = slope;
        return c + (1 - a) * (1 - a) / (Math.PI * (1 + a * a)) * (Math.Sqrt(1 - c * c) - c * Math.Acos(c));
    }

    /// <summary>sqrt(2 / (1 + alpha^2)): the output scale that makes the leaky ReLU's Q map the identity.</summary>
    public static double LeakyReluOutputScale(double slope) => Math.Sqrt(2.0 / (1.0 + slope * slope));

    /// <summary>The subnetwork maximising function of a plain chain of <paramref name="layers"/> activations: r applied that many times.</summary>
    public static Func<double, Func<double, double>, double> Chain(int layers)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(layers);
        return (x, r) =>
        {
            for (int i = 0; i < layers; i++) x = r(x);
            return x;
        };
    }

    /// <summary>The negative slope that makes a plain chain of <paramref name="layers"/> scaled leaky ReLUs reach C_f(0) = <paramref name="eta"/>.</summary>
    /// <exception cref="ArgumentOutOfRangeException">eta outside (0, 1), or beyond what the chain can reach.</exception>
    public static double SolveLeakyReluSlope(int layers, double eta = DefaultEta)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(layers);
        return SolveLeakyReluSlope(Chain(layers), eta, $"a chain of {layers} leaky ReLU layers");
    }

    /// <summary>
    /// The negative slope alpha in [0, 1] with M(0, C_alpha) = <paramref name="eta"/>, for a network described by its
    /// subnetwork maximising function <paramref name="subnetworkMax"/> (dks's M(x, r): it applies r once per nonlinear
    /// layer of the maximising subnetwork, with any weighted sums of branches it has).
    /// </summary>
    /// <param name="network">How the network is named in an error.</param>
    /// <exception cref="ArgumentOutOfRangeException">eta outside (0, 1), or beyond what the network can reach.</exception>
    public static double SolveLeakyReluSlope(Func<double, Func<double, double>, double> subnetworkMax, double eta = DefaultEta, string network = "the network")
    {
        ArgumentNullException.ThrowIfNull(subnetworkMax);
        if (!(eta > 0 && eta < 1))
            throw new ArgumentOutOfRangeException(nameof(eta), eta, string.Create(CultureInfo.InvariantCulture, $"eta, the target C_f(0), must be in (0, 1), got {eta}"));
        double MaxC0(double slope) => subnetworkMax(0.0, c => LeakyReluCMap(c, slope));
        double reachable = MaxC0(0.0);
        if (reachable < eta)
            throw new ArgumentOutOfRangeException(nameof(eta), eta, string.Create(CultureInfo.InvariantCulture,
                $"{network} cannot reach C_f(0) = {eta}: its most nonlinear choice, ReLU (slope 0), gives {reachable:0.000}; lower eta to at most that, or use a deeper network"));
        return SolveIncreasing(slope => 1 - MaxC0(slope), 1 - eta, x: 0.5, lo: 0, hi: 1);
    }

    /// <summary>dks's <c>_solve_increasing</c>: bisection on an increasing function, tolerance on its value.</summary>
    static double SolveIncreasing(Func<double, double> fn, double target, double x, double lo, double hi)
    {
        for (int i = 0; i < MaxEvaluations; i++)
        {
            double v = fn(x);
            if (Math.Abs(v - target) < Tolerance) return x;
            if (v > target)
            {
                hi = x;
                x = 0.5 * (x + lo);
            }
            else
            {
                lo = x;
                x = double.IsPositiveInfinity(hi) ? 2 * x : 0.5 * (x + hi);
            }
        }
        throw new ArgumentOutOfRangeException(nameof(target), target, $"no slope met the target within {MaxEvaluations} evaluations");
    }
}

/// <summary>
/// The TAT-transformed leaky ReLU, phi(x) = sqrt(2 / (1 + alpha^2)) * lrelu_alpha(x), with alpha fixed at
/// construction (solved by <see cref="TailoredActivation.SolveLeakyReluSlope(int, double)"/>). No parameters.
/// </summary>
public sealed class TailoredLeakyRelu : nn.Module<Tensor, Tensor>
{
    /// <summary>The negative slope alpha.</summary>
    public double Slope { get; }

    /// <summary>The output scale sqrt(2 / (1 + alpha^2)).</summary>
    public double Scale { get; }

    /// <param name="slope">The negative slope alpha, in [0, 1].</param>
    public TailoredLeakyRelu(double slope) : base(nameof(TailoredLeakyRelu))
    {
        if (!(slope >= 0 && slope <= 1))
            throw new ArgumentOutOfRangeException(nameof(slope), slope, string.Create(CultureInfo.InvariantCulture, $"a tailored leaky ReLU's slope must be in [0, 1], got {slope}"));
        Slope = slope;
        Scale = TailoredActivation.LeakyReluOutputScale(slope);
        RegisterComponents();
    }

    /// <summary>Elementwise, any shape.</summary>
    public override Tensor forward(Tensor x) => F.leaky_relu(x, Slope).mul(Scale);
}
