using TorchSharp.Modules;
using static TorchSharp.torch;

namespace ResidualLab.Connections;

// Axes: b batch, t position, d width (the last axis).

/// <summary>
/// Deep Delta Learning: the shortcut is the delta operator A = I - beta k k^T and the write is rank one,
/// x_{l+1} = A x_l + beta k v = x_l + beta (v - k^T x_l) k, with
/// k = f / sqrt(|f|^2 + eps^2), f = F(LN(x_l)) the pre-norm sublayer's output (the direction, unit length up to eps);
/// beta = 2 sigmoid(w_b . LN(x_l) + c_b) in [0, 2]: 0 the identity, 1 a projection, 2 a reflection
/// (A's eigenvalues: 1, d - 1 times, and 1 - beta |k|^2);
/// v = 4 sigmoid(w_v . x_l + c_v), a scalar value.
/// Zhang et al. 2026, "Deep Delta Learning" (arXiv 2601.00417), eq. 2; the value-dimension-1 form of the
/// reference code yifanzhang-pro/deep-delta-learning (DDL-vdim1), whose defaults are taken: eps = 1e-5,
/// value scale 4, beta_init = 1 (c_b = logit(beta_init / 2)), w ~ N(0, 0.02^2), c_v = 0.
/// </summary>
public sealed record DeepDeltaScheme(double BetaInit = 1) : ConnectionScheme
{
    /// <summary>Added to |y| when y is normalised to the direction k.</summary>
    public const double Eps = 1e-5;
    /// <summary>The bound of the value gate: v = ValueScale sigmoid(w_v . x + c_v).</summary>
    public const double ValueScale = 4;

    /// <summary>Initial gate beta, in [0, 2].</summary>
    public double BetaInit { get; } = SchemeArguments.InRange(BetaInit, 0, 2, "deep-delta", "beta_init");

    /// <inheritdoc/>
    public override string Name => "deep-delta";
    /// <inheritdoc/>
    public override Connection Build(ConnectionSite site) => new DeepDeltaResidual(site, BetaInit);
    /// <summary>
    /// LN(x) 7 d; beta = 2 sigmoid(w_b . LN(x) + c_b) 2 d; k = y / |y| 3 d; v = 4 sigmoid(w_v . x + c_v) 2 d;
    /// k^T x 2 d; x + beta (v - k^T x) k 2 d (the scalars' few FLOPs left out).
    /// </summary>
    internal override double ForwardFlops(ConnectionSite site) => ConnectionFlops.LayerNorm(site.Width) + 11.0 * site.Width;
    /// <inheritdoc/>
    public override IReadOnlyDictionary<string, object> Options => new Dictionary<string, object> { ["beta_init"] = BetaInit };
}

/// <summary>The delta operator of one forward pass: A = I - Beta K K^T, per token (K [..., d], Beta [..., 1]).</summary>
internal sealed record DeltaShortcut(Tensor K, Tensor Beta);

internal sealed class DeepDeltaResidual : Connection
{
    readonly nn.Module<Tensor, Tensor> norm;
    readonly Parameter gate_weight;   // w_b [d]
    readonly Parameter gate_bias;     // c_b
    readonly Parameter value_weight;  // w_v [d]
    readonly Parameter value_bias;    // c_v

    public DeepDeltaResidual(ConnectionSite site, double betaInit) : base(nameof(DeepDeltaResidual))
    {
        norm = site.MakeNorm();
        double p = Math.Clamp(betaInit / 2, 1e-6, 1 - 1e-6);
        gate_weight = nn.Parameter(normal(0, 0.02, [site.Width]));
        gate_bias = nn.Parameter(full(1, Math.Log(p / (1 - p))));
        value_weight = nn.Parameter(normal(0, 0.02, [site.Width]));
        value_bias = nn.Parameter(zeros(1));
        RegisterComponents();
    }

    /// <summary>The operator of the last depth step; valid while that pass's tensors live.</summary>
    public DeltaShortcut? LastShortcut { get; private set; }

    public override Branch Prepare(Tensor stream, LayerContext ctx)
    {
        var normed = norm.call(stream);
        var beta = 2 * sigmoid(normed.matmul(gate_weight).unsqueeze(-1) + gate_bias); // [..., 1]
        return new(normed, stream, beta);
    }

    public override Tensor Combine(Tensor output, Branch branch, LayerContext ctx)
    {
        var x = branch.Stream;
        var beta = branch.Mix!;
        var k = output / (output.pow(2).sum(-1, keepdim: true) + DeepDeltaScheme.Eps * DeepDeltaScheme.Eps).sqrt(); // [..., d]
        var v = DeepDeltaScheme.ValueScale * sigmoid(x.matmul(value_weight).unsqueeze(-1) + value_bias);          // [..., 1]
        LastShortcut = new DeltaShortcut(k, beta);
        return x + beta * (v - (k * x).sum(-1, keepdim: true)) * k;
    }
}
