using static TorchSharp.torch;

namespace ResidualLab.Connections;

// Axes: b batch, t position, d width (the last axis).

/// <summary>
/// CompleteP / depth-muP: pre-norm with every branch multiplied by m^(-alpha), m = L / L_base the depth
/// multiplier (L layers): x_{l+1} = x_l + m^(-alpha) F(LN(x_l)). alpha = 1 is CompleteP, alpha = 1/2 depth-muP;
/// with L_base = 1 (the default) the multiplier is 1/L or 1/sqrt(L).
/// Dey et al. 2025, "Don't be lazy: CompleteP enables compute-efficient deep transformers" (arXiv 2505.01618),
/// table 1; reference code EleutherAI/nanoGPT-mup (branch completep).
/// The paper pairs the multiplier with an AdamW rule, applied here through <see cref="ConnectionScheme.OptimizerRule"/>
/// (lr_rule = true): the learning rate of every parameter inside the blocks (matrices, biases, norm gains) times
/// m^(alpha - 1) (1 for CompleteP, alpha = 1), and AdamW's eps times m^(-alpha) for all parameters, as the
/// reference code's parameter groups do; embeddings and the final norm keep the base learning rate. The width
/// rules of muP are not part of this scheme (width multiplier 1).
/// On the CIFAR ResNet: L = blocks of the stage (pre-norm at depth 8).
/// </summary>
public sealed record CompletePScheme(double Alpha = 1, int BaseDepth = 1, bool LrRule = true) : ConnectionScheme
{
    /// <summary>The depth exponent alpha, in [0, 2]: 1 CompleteP, 0.5 depth-muP.</summary>
    public double Alpha { get; } = SchemeArguments.InRange(Alpha, 0, 2, "completep", "alpha");
    /// <summary>L_base, the depth at which the multiplier is 1, in [1, 10000].</summary>
    public int BaseDepth { get; } = SchemeArguments.InRange(BaseDepth, 1, 10000, "completep", "base_depth");

    /// <inheritdoc/>
    public override string Name => "completep";
    /// <inheritdoc/>
    public override Connection Build(ConnectionSite site) => new CompletePResidual(site, Multiplier(site.LayerCount));
    internal override AdamWRule OptimizerRule(int layers) =>
        LrRule ? new AdamWRule(Math.Pow((double)layers / BaseDepth, Alpha - 1), Multiplier(layers)) : AdamWRule.None;
    /// <summary>LN(x), then x + m y: 7 d + 2 d.</summary>
    internal override double ForwardFlops(ConnectionSite site) => ConnectionFlops.LayerNorm(site.Width) + 2.0 * site.Width;
    /// <inheritdoc/>
    public override IReadOnlyDictionary<string, object> Options =>
        new Dictionary<string, object> { ["alpha"] = Alpha, ["base_depth"] = (long)BaseDepth, ["lr_rule"] = LrRule };

    /// <summary>The branch multiplier (L / L_base)^(-alpha) for a model of <paramref name="layers"/> layers.</summary>
    public double Multiplier(int layers) => Math.Pow((double)layers / BaseDepth, -Alpha);
}

internal sealed class CompletePResidual : Connection
{
    readonly nn.Module<Tensor, Tensor> norm;

    public double Multiplier { get; }

    public CompletePResidual(ConnectionSite site, double multiplier) : base(nameof(CompletePResidual))
    {
        norm = site.MakeNorm();
        Multiplier = multiplier;
        RegisterComponents();
    }

    public override Branch Prepare(Tensor stream, LayerContext ctx) => new(norm.call(stream), stream);

    public override Tensor Combine(Tensor output, Branch branch, LayerContext ctx) => branch.Stream + Multiplier * output;
}
