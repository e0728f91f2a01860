namespace ResidualLab.Connections;

// Axes: b batch, t positions, d width (the last axis). Equations per sequence X [t, d].

/// <summary>
/// SAS, the simplified attention sub-block (He and Hofmann, ICLR 2024, "Simplifying Transformer Blocks", arXiv 2311.01906,
/// sec. 4.2, Fig. 9, Eqs. 1 and 12; the authors' code bobby-he/simplified_transformers, <c>model_utils.py</c>): shaped
/// attention without value and output projections (<see cref="ShapedAttentionScheme"/>), no skip around the attention, the
/// MLP's skip kept:
/// <code>
/// X^    = beta_SA MHA~(N_1(X_in))                       (no attention skip)
/// X_out = alpha_FF X^ + beta_FF MLP(N_2(X^))            (MLP skip kept)
/// </code>
/// beta_SA = alpha_FF = 1, beta_FF = 0.1 sqrt(18 / L) at init, all trainable (alpha_FF is trainable in the authors' code; the
/// paper lists only beta_SA and beta_FF). It is not shortcut-free: the MLP's skip carries the stream past every MLP.
/// On the CIFAR ResNet: does not apply (it shapes an attention).
/// </summary>
/// <param name="Norm">RMSNorm before the sublayers; false: none, but the model's norm on block 0's attention input.</param>
/// <param name="MlpGain">beta_FF at init; 0: 0.1 sqrt(18 / L).</param>
/// <param name="FirstValue">Block 0's value is alpha_V I + beta_V ΔW (learned), not the identity.</param>
/// <param name="PerHead">alpha, beta, gamma per head, else per layer.</param>
public sealed record SasScheme(bool Norm = true, double MlpGain = 0, bool FirstValue = true, bool PerHead = true)
    : ShapedAttentionScheme(Norm, MlpGain, FirstValue, PerHead, "sas")
{
    /// <inheritdoc/>
    public override string Name => "sas";

    /// <summary>The attention's connection (beta_SA, no skip) or the MLP's (alpha_FF skip, beta_FF).</summary>
    public override Connection Build(ConnectionSite site) => IsAttention(site)
        ? new ShapedAttentionConnection(MakeNorm(site, firstAttention: site.Layer == 0))
        : new ShapedMlpConnection(MakeNorm(site, firstAttention: false), MlpGainAt(site.LayerCount), parallel: false);

    /// <summary>The norm, then beta_SA y (d); the norm, then alpha_FF x + beta_FF y (3 d).</summary>
    internal override double ForwardFlops(ConnectionSite site) => IsAttention(site)
        ? NormFlops(site, site.Layer == 0) + site.Width
        : NormFlops(site, false) + 3.0 * site.Width;
}
