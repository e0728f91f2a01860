using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace ResidualLab.Layers;

/// <summary>
/// TAT's transformed leaky ReLU as a layer, phi(x) = scale * max(x, s x) with the slope s and scale sqrt(2 / (1 + s^2)) that
/// <see cref="TailoredActivation"/> solved for the network (Zhang, Botev and Martens 2022, arXiv 2203.08120). Elementwise,
/// any shape; no parameters.
/// </summary>
internal sealed class TatActivation : nn.Module<Tensor, Tensor>
{
    /// <summary>The solved activation: its slope, scale and the C(0) it gives the network.</summary>
    public TailoredLeakyRelu Solved { get; }

    /// <exception cref="ArgumentException">The solve could not reach its target (the network is too shallow for it).</exception>
    public TatActivation(TailoredLeakyRelu solved) : base(nameof(TatActivation))
    {
        if (!solved.Reachable)
            throw new ArgumentException(FormattableString.Invariant($"TAT cannot reach C_f(0) = {solved.Eta} for this network: even ReLU gives {solved.C0:0.000}"));
        Solved = solved;
        RegisterComponents();
    }

    public override Tensor forward(Tensor x) => F.leaky_relu(x, Solved.NegativeSlope).mul(Solved.OutputScale);
}
