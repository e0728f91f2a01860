using ResidualLab.Layers;
using static TorchSharp.torch;

namespace ResidualLab.Connections;

// Axes: b batch, h heads, t query positions, s key positions, d width, d_h = d / h head width.

/// <summary>
/// How a scheme asks a Transformer to shape its attention sublayer (<see cref="ModelNeeds.AttentionShape"/>; the model
/// reads it from <see cref="ConnectionScheme.AttentionAt"/>). The matrix applied to the values of head h is
/// <code>
/// A'_h = alpha I + beta A_h - gamma C,    A_h = D ⊙_rows softmax(X W_h^Q (X W_h^K)^T / sqrt(d_h) + B + M)
/// </code>
/// with M the causal mask, C the uniform causal matrix (C_ts = 1 / (t + 1) for s &lt;= t, 0 above: what A_h is when the
/// queries are zero), and B = log P, D = rowsum(P) from a fixed causal <see cref="Prior"/> P (B = 0 and D = 1 without
/// one). With zero queries at init, A_h = P exactly. The model's plain attention is <see cref="Standard"/>
/// (alpha = gamma = 0, beta = 1, fixed). The value and output projections and the query and key initialisation are
/// part of the shape.
/// </summary>
public sealed record AttentionShape
{
    /// <summary>The model's own attention: softmax attention, learned projections with the model's initialisation.</summary>
    public static AttentionShape Standard { get; } = new();

    /// <summary>alpha at init: the weight on the identity (each token attends to itself); 0 leaves the term out.</summary>
    public double Identity { get; init; }

    /// <summary>beta at init: the weight on the softmax attention; always a term (0 with trainable gains: off at init, learned).</summary>
    public double Softmax { get; init; } = 1;

    /// <summary>gamma at init: the weight of the uniform causal matrix C subtracted; 0 leaves the term out.</summary>
    public double Centre { get; init; }

    /// <summary>Whether alpha, beta and gamma are constants or trainable scalars, one each per layer or per head.</summary>
    public ShapeGains Gains { get; init; } = ShapeGains.Fixed;

    /// <summary>A fixed causal matrix the attention equals at init with zero queries; null: none (B = 0, D = 1).</summary>
    public CausalPrior? Prior { get; init; }

    /// <summary>The query weights (and bias) start at zero, so that A_h = D ⊙ softmax(B + M) at init.</summary>
    public bool ZeroQuery { get; init; }

    /// <summary>The key weights start N(0, KeyStd^2) with a zero bias; null: the model's initialisation.</summary>
    public double? KeyStd { get; init; }

    /// <summary>The value projection W^V.</summary>
    public ProjectionShape Value { get; init; } = ProjectionShape.Learned;

    /// <summary>The output projection W^O.</summary>
    public ProjectionShape Output { get; init; } = ProjectionShape.Learned;

    /// <summary>Whether this is the model's plain attention.</summary>
    public bool IsStandard => this == Standard;
}

/// <summary>The attention shape's scalars alpha, beta, gamma.</summary>
public enum ShapeGains
{
    /// <summary>Constants at their initial values (no parameters).</summary>
    Fixed,

    /// <summary>Trainable, one alpha, beta and gamma per attention layer.</summary>
    PerLayer,

    /// <summary>Trainable, one alpha, beta and gamma per head.</summary>
    PerHead,
}

/// <summary>A projection of the attention sublayer (value or output).</summary>
public enum ProjectionShape
{
    /// <summary>A learned d x d matrix with the model's initialisation.</summary>
    Learned,

    /// <summary>A learned d x d matrix, random orthogonal at init.</summary>
    Orthogonal,

    /// <summary>No matrix: the identity (the projection is removed).</summary>
    Identity,

    /// <summary>W = a I + b ΔW with trainable scalars a = b = 1 and a learned ΔW = 0 at init: the identity at init, learned after.</summary>
    IdentityPlusLearned,
}

/// <summary>
/// A fixed causal T x T matrix P for an attention layer: lower-triangular and strictly positive on and below the
/// diagonal, so that P = D ⊙_rows softmax(B + M) with B = log P and D its row sums. Every P here has the property that its
/// leading t x t block is the matrix built for length t, so the model builds it once at its block size and slices it.
/// </summary>
public abstract record CausalPrior
{
    /// <summary>P for sequences of <paramref name="length"/> tokens, float64 [T, T], zero above the diagonal.</summary>
    public abstract Tensor Matrix(int length);

    /// <summary>log P on and below the diagonal, −∞ above, float64 [T, T]. A prior with a closed form for its logarithm
    /// overrides this to keep the tiny far-off entries exact (their float64 values may underflow).</summary>
    public virtual Tensor Log(int length) => Matrix(length).log();
}

/// <summary>How a scheme asks a Transformer to shape its MLP sublayer (<see cref="ModelNeeds.MlpShape"/>; the model reads it
/// from <see cref="ConnectionScheme.MlpAt"/>): x -> W_2 phi(W_1 x + b_1) + b_2.</summary>
public sealed record MlpShape
{
    /// <summary>The model's own MLP: GELU, biases as the model has them, the model's initialisation.</summary>
    public static MlpShape Standard { get; } = new();

    /// <summary>The activation phi.</summary>
    public MlpActivation Activation { get; init; } = MlpActivation.Gelu;

    /// <summary>Leaky ReLU: the negative slope s of phi(x) = scale · max(x, s x) (0: ReLU).</summary>
    public double NegativeSlope { get; init; }

    /// <summary>Leaky ReLU: the output scale of phi (TAT's sqrt(2 / (1 + s^2)); 1 for a plain ReLU).</summary>
    public double OutputScale { get; init; } = 1;

    /// <summary>Whether W_1 and W_2 have biases; null: as the model's <c>bias</c> setting.</summary>
    public bool? Bias { get; init; }

    /// <summary>How W_1 and W_2 start (biases at zero unless the model's initialisation says otherwise).</summary>
    public MatrixInit Init { get; init; } = MatrixInit.Model;

    /// <summary><see cref="MatrixInit.Normal"/>: the standard deviation of both matrices.</summary>
    public double Std { get; init; } = 0.02;

    /// <summary>TAT's MLP: the transformed leaky ReLU <paramref name="activation"/> with scaled-orthogonal weights and zero biases
    /// (DKS/TAT's pairing, which keeps each unit's mean square).</summary>
    public static MlpShape Tailored(TailoredLeakyRelu activation) => new()
    {
        Activation = MlpActivation.LeakyRelu,
        NegativeSlope = activation.NegativeSlope,
        OutputScale = activation.OutputScale,
        Init = MatrixInit.ScaledOrthogonal,
    };
}

/// <summary>The MLP's activation.</summary>
public enum MlpActivation
{
    /// <summary>GELU (GPT-2).</summary>
    Gelu,

    /// <summary>scale · max(x, s x), with <see cref="MlpShape.NegativeSlope"/> s and <see cref="MlpShape.OutputScale"/>.</summary>
    LeakyRelu,
}

/// <summary>How a sublayer's matrices start.</summary>
public enum MatrixInit
{
    /// <summary>The model's initialisation (its <c>init</c> setting).</summary>
    Model,

    /// <summary>N(0, std^2) for every matrix, no depth scaling; biases zero.</summary>
    Normal,

    /// <summary>Scaled uniform orthogonal (DKS/TAT): a random orthogonal matrix times max(sqrt(fan_out / fan_in), 1),
    /// so that the mean square of a unit is kept; biases zero.</summary>
    ScaledOrthogonal,
}
