using ResidualLab.Layers;

namespace ResidualLab.Connections;

// Axes: b batch, h heads, t positions, d width. Equations per sequence X [t, d].

/// <summary>
/// Value-SkipInit: no skip around either sublayer; the skip moves inside the attention, whose matrix is
/// <code>
/// A'_h(X) = alpha I + beta A_h(X),   alpha = 1, beta = 0 at init (trainable)
/// X_mid   = Concat_h(A'_h(N(X)) N(X) W_h^V) W^O          (no skip)
/// X_out   = MLP(N'(X_mid))                                (no skip)
/// </code>
/// so each attention layer is the value and output projections alone at init. He, Martens, Zhang, Botev, Brock, Smith and
/// Teh, ICLR 2023, "Deep Transformers without Shortcuts: Modifying Self-attention for Faithful Signal Propagation"
/// (arXiv 2302.10322); the paper's full text could not be read here, so its equations are those He and Hofmann 2024
/// (arXiv 2311.01906) give for it (their Eq. 4 and sec. 4.1): alpha I + beta A with trainable scalars alpha = 1,
/// beta = 0, and W^V, W^O independent random orthogonal matrices.
/// Model side (<see cref="ModelNeeds.AttentionShape"/>, <see cref="ModelNeeds.MlpShape"/>): W^V and W^O random orthogonal
/// (trainable); the MLP's activation TAT's leaky ReLU (<see cref="TailoredActivation"/>) with its slope solved for
/// C_f(0) = eta over the model's L MLPs, and scaled-orthogonal MLP weights, zero biases.
/// Choices the readable sources leave open, reconstructed here:
/// <list type="bullet">
/// <item>queries W^Q = 0 at init ("like He et al. (2023), we initialise queries W^Q = 0", He and Hofmann sec. 4.1; with
/// beta = 0 it does not change the forward pass at init); keys N(0, 1/d), non-zero so that W^Q and W^K learn;</item>
/// <item>alpha and beta one pair per layer (option per_head: one pair per head, as He and Hofmann's code shapes its gains);
/// no weight decay on them;</item>
/// <item>the MLP: TAT leaky ReLU (eta = 0.9, dks's default) with scaled-orthogonal weights, from He and Hofmann's
/// sec. 4.3, which groups He et al. 2023 with DKS/TAT as making skipless MLPs "more linear"; where eta is out of reach
/// for L MLPs (L &lt;= 12 at eta = 0.9) the slope is 0, a ReLU times sqrt 2, the closest reachable C_f(0);</item>
/// <item>normalisation: pre-sublayer norms on (option norm, as the lab's <c>none</c> scheme), since the only readable runs of
/// the method (He and Hofmann's comparisons) used them; norm = false is the vanilla, norm-free model;</item>
/// <item>the embeddings, the final norm and the tied head are the model's.</item>
/// </list>
/// On the CIFAR ResNet: does not apply (it shapes an attention).
/// </summary>
public sealed record ValueSkipInitScheme(bool Norm = true, bool PerHead = false, double Eta = TailoredActivation.DefaultEta) : ConnectionScheme
{
    /// <summary>The TAT target C_f(0), in [0, 0.99].</summary>
    public double Eta { get; } = SchemeArguments.InRange(Eta, 0, 0.99, "value-skipinit", "eta");

    /// <inheritdoc/>
    public override string Name => "value-skipinit";

    /// <inheritdoc/>
    public override ModelNeeds Needs => ModelNeeds.AttentionShape | ModelNeeds.MlpShape;

    /// <summary>The sublayer replaces the stream: x = F(N(x)).</summary>
    public override Connection Build(ConnectionSite site) => new NoResidual(site, Norm);

    /// <summary>alpha I + beta A with alpha = 1, beta = 0 trainable; zero queries, N(0, 1/d) keys, orthogonal W^V and W^O.</summary>
    public override AttentionShape AttentionAt(ConnectionSite site) => new()
    {
        Identity = 1,
        Softmax = 0,
        Gains = PerHead ? ShapeGains.PerHead : ShapeGains.PerLayer,
        ZeroQuery = true,
        KeyStd = 1 / Math.Sqrt(site.Width),
        Value = ProjectionShape.Orthogonal,
        Output = ProjectionShape.Orthogonal,
    };

    /// <summary>TAT's leaky ReLU for the model's L MLPs, scaled-orthogonal weights.</summary>
    public override MlpShape MlpAt(ConnectionSite site) => MlpShape.Tailored(TailoredActivation.ForChain(site.LayerCount, Eta));

    /// <summary>LN(x) when normed; nothing is added.</summary>
    internal override double ForwardFlops(ConnectionSite site) => Norm ? ConnectionFlops.LayerNorm(site.Width) : 0;

    /// <inheritdoc/>
    public override IReadOnlyDictionary<string, object> Options =>
        new Dictionary<string, object> { ["norm"] = Norm, ["per_head"] = PerHead, ["eta"] = Eta };
}
