namespace ResidualLab.Connections;

// Axes: b batch, t positions, d width (the last axis). Equations per sequence X [t, d].

/// <summary>
/// SAS-P, the simplified parallel block (He and Hofmann, ICLR 2024, "Simplifying Transformer Blocks", arXiv 2311.01906,
/// sec. 4.3, Eq. 7 with alpha_comb = 0, Fig. 10; the authors' code bobby-he/simplified_transformers, <c>model_utils.py</c>):
/// shaped attention without value and output projections (<see cref="ShapedAttentionScheme"/>) and the MLP side by side on
/// one shared norm of the block's input, with no skip at all:
/// <code>
/// X_out = beta_SA MHA~(N_1(X_in)) + beta_FF MLP(N_1(X_in))
/// </code>
/// beta_SA = 1 and beta_FF = 0.1 sqrt(18 / L) at init, both trainable. The model runs the MLP in parallel with the attention
/// (<see cref="ModelNeeds.ParallelSublayers"/>): the MLP reads the attention's normed input (one norm per block, as the
/// authors' code, whose ln_2 exists but is unused) and its output is added to beta_SA MHA~. Shortcut-free: the attention
/// matrix's identity term is the only path that keeps a token's own representation, and it is trainable.
/// On the CIFAR ResNet: does not apply (it shapes an attention).
/// </summary>
/// <param name="Norm">RMSNorm before the sublayers; false: none, but the model's norm on block 0's input.</param>
/// <param name="MlpGain">beta_FF at init; 0: 0.1 sqrt(18 / L).</param>
/// <param name="FirstValue">Block 0's value is alpha_V I + beta_V ΔW (learned), not the identity.</param>
/// <param name="PerHead">alpha, beta, gamma per head, else per layer.</param>
public sealed record SasPScheme(bool Norm = true, double MlpGain = 0, bool FirstValue = true, bool PerHead = true)
    : ShapedAttentionScheme(Norm, MlpGain, FirstValue, PerHead, "sas-p")
{
    /// <inheritdoc/>
    public override string Name => "sas-p";

    /// <inheritdoc/>
    public override ModelNeeds Needs => base.Needs | ModelNeeds.ParallelSublayers;

    /// <summary>The attention's connection (the shared norm, beta_SA) or the parallel MLP's (beta_FF, added to the attention's output).</summary>
    public override Connection Build(ConnectionSite site) => IsAttention(site)
        ? new ShapedAttentionConnection(MakeNorm(site, firstAttention: site.Layer == 0))
        : new ShapedMlpConnection(norm: null, MlpGainAt(site.LayerCount), parallel: true);

    /// <summary>The shared norm, then beta_SA y (d); x + beta_FF y (2 d).</summary>
    internal override double ForwardFlops(ConnectionSite site) => IsAttention(site)
        ? NormFlops(site, site.Layer == 0) + site.Width
        : 2.0 * site.Width;
}
