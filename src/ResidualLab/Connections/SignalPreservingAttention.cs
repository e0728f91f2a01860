using ResidualLab.Layers;
using static TorchSharp.torch;

namespace ResidualLab.Connections;

// Axes: t, s positions (0-based); l layer (1-based, l = 0 is the input); L layers. Equations per sequence X [t, d].

/// <summary>
/// What E-SPA (<see cref="ESpaScheme"/>) and U-SPA (<see cref="USpaScheme"/>) share: a vanilla Transformer (no skips, no
/// normalisation in the blocks) whose attention at init is a prescribed causal matrix A_l per layer, chosen so that the
/// token kernel follows a schedule of targets Sigma_0 = I, Sigma_1, ..., Sigma_L that never collapses to rank one.
/// He, Martens, Zhang, Botev, Brock, Smith and Teh, ICLR 2023 (arXiv 2302.10322), "Signal Preserving Attention".
/// <code>
/// X_mid = Concat_h(A_l,h(X) X W_h^V) W^O,    A_l,h = D_l ⊙_rows softmax(X W_h^Q (X W_h^K)^T / sqrt(d_h) + B_l + M)
/// X_l   = phi(X_mid W_1 + b_1) W_2 + b_2,     phi TAT's leaky ReLU
/// A_l   = L_l L_(l-1)^-1,  Sigma_l = L_l L_l^T (lower Cholesky factors),  so  A_l Sigma_(l-1) A_l^T = Sigma_l
/// </code>
/// With orthogonal W^V W^O the attention sublayer maps the kernel X X^T exactly as A_l (.) A_l^T, and A_L ... A_1 = L_L.
/// A_l is realised at init by zero queries, a fixed bias B_l = log A_l and a fixed row rescale D_l = rowsum(A_l), which is
/// how He et al.'s abstract names it ("bias matrices and location-dependent rescaling"); A_l is lower-triangular and
/// strictly positive on and below the diagonal, so B_l exists.
/// The paper's full text could not be read here; what is reconstructed, and from what:
/// <list type="bullet">
/// <item>the realisation D ⊙ softmax(B + M) and the kernel schedule of E-SPA from the one public re-implementation
/// (richardcepka/SimplEsT-ViT, which quotes the paper's Cholesky construction and its Lemma 1);</item>
/// <item>Sigma_0 = I (tokens are near-orthogonal at init); B_l and D_l fixed buffers shared by the heads (no T^2
/// parameters per layer);</item>
/// <item>W^Q = 0 (He and Hofmann 2024, sec. 4.1: "like He et al. (2023), we initialise queries W^Q = 0"); W^K N(0, 1/d);
/// W^V and W^O independent random orthogonal (He and Hofmann, sec. 4.1); attention biases zero;</item>
/// <item>the MLP: TAT's leaky ReLU with the slope solved for C_f(0) = eta over the L MLPs (one activation each), scaled
/// orthogonal weights, zero biases (DKS/TAT's defaults, eta = 0.9); where eta is out of reach for L MLPs (L &lt;= 12 at
/// eta = 0.9) the slope is 0, a ReLU times sqrt 2, the closest reachable C_f(0);</item>
/// <item>the learned position embedding, the final LayerNorm (outside the blocks) and the tied head are the model's.</item>
/// </list>
/// On the CIFAR ResNet: does not apply (it shapes an attention).
/// </summary>
public abstract record SignalPreservingScheme : ConnectionScheme
{
    /// <summary>Checks and keeps <paramref name="eta"/>, the TAT target C_f(0) of the MLPs, for the scheme <paramref name="name"/>.</summary>
    private protected SignalPreservingScheme(double eta, string name) => Eta = SchemeArguments.InRange(eta, 0, 0.99, name, "eta");

    /// <summary>The TAT target C_f(0) of the MLPs, in [0, 0.99].</summary>
    public double Eta { get; }

    /// <inheritdoc/>
    public override ModelNeeds Needs => ModelNeeds.AttentionShape | ModelNeeds.MlpShape;

    /// <summary>No skip and no norm: x = F(x).</summary>
    public override Connection Build(ConnectionSite site) => new NoResidual(site, useNorm: false);

    /// <summary>The prescribed A_l as a fixed prior reached with zero queries; N(0, 1/d) keys; orthogonal W^V and W^O.</summary>
    public override AttentionShape AttentionAt(ConnectionSite site) => new()
    {
        Prior = Prior(site.Layer + 1, site.LayerCount),
        ZeroQuery = true,
        KeyStd = 1 / Math.Sqrt(site.Width),
        Value = ProjectionShape.Orthogonal,
        Output = ProjectionShape.Orthogonal,
    };

    /// <summary>TAT's leaky ReLU for the model's L MLPs, scaled-orthogonal weights.</summary>
    public override MlpShape MlpAt(ConnectionSite site) => MlpShape.Tailored(TailoredActivation.ForChain(site.LayerCount, Eta));

    /// <summary>A_l, the attention matrix of layer <paramref name="layer"/> (1-based) of <paramref name="depth"/> at init.</summary>
    public abstract CausalPrior Prior(int layer, int depth);

    /// <summary>The target kernel Sigma_l of layer <paramref name="layer"/> (0: the identity) for <paramref name="length"/> tokens, float64.</summary>
    public abstract Tensor Kernel(int layer, int depth, int length);

    /// <summary>Nothing is added and nothing normalised.</summary>
    internal override double ForwardFlops(ConnectionSite site) => 0;
}

/// <summary>A_l = chol(Sigma_l) chol(Sigma_(l-1))^-1 from the two kernels, in float64 (the general construction, for kernels without a
/// closed form).</summary>
internal sealed record CholeskyPrior(Func<int, Tensor> Now, Func<int, Tensor> Before) : CausalPrior
{
    public override Tensor Matrix(int length)
    {
        using var scope = NewDisposeScope();
        var now = linalg.cholesky(Now(length));
        var before = linalg.cholesky(Before(length));
        return linalg.solve_triangular(before, now, upper: false, left: false).tril().MoveToOuterDisposeScope(); // X before = now
    }
}
