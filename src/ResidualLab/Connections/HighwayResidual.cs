using TorchSharp.Modules;
using static TorchSharp.torch;

namespace ResidualLab.Connections;

// Axes: b batch, t position, d width (the last axis).

/// <summary>
/// Highway connection: x_{l+1} = T ⊙ F(LN(x_l)) + (1 - T) ⊙ x_l, with the transform gate
/// T = sigmoid(W LN(x_l) + b) per channel; b starts negative so the layer starts close to carrying x_l.
/// Srivastava, Greff and Schmidhuber 2015, "Highway Networks" (arXiv 1505.00387)
/// (here the gate and the sublayer read the normalised stream, as in a pre-norm Transformer).
/// On the CIFAR ResNet: gate starts carrying x (T = 0.12).
/// </summary>
public sealed record HighwayScheme(double GateBias = HighwayScheme.DefaultGateBias) : ConnectionScheme
{
    /// <summary>The default initial gate bias (T = sigmoid(-2) = 0.12: start by mostly carrying x).</summary>
    public const double DefaultGateBias = -2.0;

    /// <summary>Initial gate bias b, in [-100, 100].</summary>
    public double GateBias { get; } = SchemeArguments.InRange(GateBias, -100, 100, "highway", "gate_bias");

    /// <inheritdoc/>
    public override string Name => "highway";
    /// <inheritdoc/>
    public override Connection Build(ConnectionSite site) => new HighwayResidual(site, GateBias);
    /// <summary>LN(x) 7 d; the gate W LN(x) + b, sigmoid: 2 d^2 + 2 d; x + T (y - x): 3 d.</summary>
    internal override double ForwardFlops(ConnectionSite site) =>
        ConnectionFlops.LayerNorm(site.Width) + ConnectionFlops.MatVec(site.Width, site.Width) + 5.0 * site.Width;
    /// <inheritdoc/>
    public override IReadOnlyDictionary<string, object> Options => new Dictionary<string, object> { ["gate_bias"] = GateBias };
}

internal sealed class HighwayResidual : Connection
{
    readonly nn.Module<Tensor, Tensor> norm;
    readonly Linear gate;

    public HighwayResidual(ConnectionSite site, double gateBias) : base(nameof(HighwayResidual))
    {
        norm = site.MakeNorm();
        gate = nn.Linear(site.Width, site.Width);
        RegisterComponents();
        using var _ = no_grad();
        nn.init.normal_(gate.weight!, 0.0, 0.02);
        nn.init.constant_(gate.bias!, gateBias);
    }

    public override Branch Prepare(Tensor stream, LayerContext ctx)
    {
        var normed = norm.call(stream);
        return new(normed, stream, sigmoid(gate.call(normed))); // Mix: the gate T
    }

    public override Tensor Combine(Tensor output, Branch branch, LayerContext ctx) =>
        branch.Stream + branch.Mix! * (output - branch.Stream);
}
