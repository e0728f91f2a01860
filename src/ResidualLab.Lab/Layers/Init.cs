using TorchSharp.Modules;
using static TorchSharp.torch;

namespace ResidualLab.Layers;

/// <summary>Which initialisation the GPT's embeddings and sublayer matrices get (<c>model.init</c>).</summary>
internal enum ModelInit
{
    /// <summary>GPT-2 / nanoGPT: N(0, 0.02) everywhere, projections into the stream N(0, 0.02 / sqrt(2L)), zero biases.</summary>
    Gpt2,

    /// <summary>
    /// Each module's PyTorch default: Linear weight and bias U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    /// (kaiming_uniform with a = sqrt(5)), Embedding N(0, 1).
    /// </summary>
    PyTorch,

    /// <summary>
    /// Depth-scaled init (DS-Init): the matrices of block l (1-based) U(-r, r), r = sqrt(6 / (fan_in + fan_out)) / sqrt(l),
    /// zero biases; embeddings as GPT-2. Zhang, Titov and Sennrich 2019, "Improving Deep Transformer with
    /// Depth-Scaled Initialization and Merged Attention" (arXiv 1908.11365, sec. 3, alpha = 1): it shrinks
    /// the variance of deeper layers so that deep Transformers train without changing the architecture.
    /// </summary>
    DsInit,
}

/// <summary>
/// Named initialisations, applied where a layer is built (not by matching parameter names). Schemes that
/// prescribe their own init (DeepNorm, ReZero, ...) apply it afterwards, on top of these.
/// </summary>
internal static class Init
{
    public static IReadOnlyList<string> Names { get; } = ["gpt2", "pytorch", "ds-init"];

    public static ModelInit? Parse(string name) => name switch
    {
        "gpt2" => ModelInit.Gpt2,
        "pytorch" => ModelInit.PyTorch,
        "ds-init" => ModelInit.DsInit,
        _ => null,
    };

    public static string Name(ModelInit init) => Names[(int)init];

    /// <summary>GPT-2's std of the token and position embeddings and of the matrices.</summary>
    public const double Gpt2Std = 0.02;

    /// <summary>Weight ~ N(0, std^2), bias = 0 (GPT-2 / nanoGPT).</summary>
    public static void Normal(Linear linear, double std)
    {
        using var _ = no_grad();
        nn.init.normal_(linear.weight!, 0.0, std);
        if (linear.bias is not null) nn.init.zeros_(linear.bias);
    }

    public static void Normal(Embedding embedding, double std)
    {
        using var _ = no_grad();
        nn.init.normal_(embedding.weight!, 0.0, std);
    }

    /// <summary>Weight and bias ~ U(-bound, bound); bias zero when <paramref name="biasBound"/> is 0.</summary>
    static void Uniform(Linear linear, double bound, double biasBound)
    {
        using var _ = no_grad();
        nn.init.uniform_(linear.weight!, -bound, bound);
        if (linear.bias is null) return;
        if (biasBound > 0) nn.init.uniform_(linear.bias, -biasBound, biasBound);
        else nn.init.zeros_(linear.bias);
    }

    /// <summary>Rows [part d, (part + 1) d) of a Linear that stacks <paramref name="parts"/> matrices of d rows (c_attn's q, k, v),
    /// and the same slice of its bias (null without one): views, so writing them writes the Linear.</summary>
    static (Tensor Weight, Tensor? Bias) Part(Linear linear, int part, int parts)
    {
        long d = linear.weight!.shape[0] / parts;
        return (linear.weight.narrow(0, part * d, d), linear.bias?.narrow(0, part * d, d));
    }

    /// <summary>Part <paramref name="part"/> of <paramref name="parts"/> stacked matrices (weight and bias) set to zero.</summary>
    public static void Zero(Linear linear, int part, int parts)
    {
        using var _ = no_grad();
        var (weight, bias) = Part(linear, part, parts);
        weight.zero_();
        bias?.zero_();
    }

    /// <summary>Part <paramref name="part"/> of <paramref name="parts"/> stacked matrices ~ N(0, std^2), its bias zero.</summary>
    public static void Normal(Linear linear, int part, int parts, double std)
    {
        using var _ = no_grad();
        var (weight, bias) = Part(linear, part, parts);
        nn.init.normal_(weight, 0.0, std);
        bias?.zero_();
    }

    /// <summary>Part <paramref name="part"/> of <paramref name="parts"/> stacked square matrices random orthogonal (Haar), its bias zero.</summary>
    public static void Orthogonal(Linear linear, int part, int parts)
    {
        using var _ = no_grad();
        var (weight, bias) = Part(linear, part, parts);
        weight.copy_(RandomOrthogonal(weight.shape[0], weight.shape[1], 1.0));
        bias?.zero_();
    }

    /// <summary>
    /// Scaled uniform orthogonal (DKS/TAT): a random orthogonal [fan_out, fan_in] weight (orthonormal rows when fan_out &lt;= fan_in,
    /// orthonormal columns otherwise) times max(sqrt(fan_out / fan_in), 1), so that each output unit keeps the input's mean square
    /// (exactly for fan_out &gt;= fan_in); bias zero.
    /// </summary>
    public static void ScaledOrthogonal(Linear linear)
    {
        using var _ = no_grad();
        long fanOut = linear.weight!.shape[0], fanIn = linear.weight.shape[1];
        linear.weight.copy_(RandomOrthogonal(fanOut, fanIn, Math.Max(Math.Sqrt((double)fanOut / fanIn), 1.0)));
        if (linear.bias is not null) nn.init.zeros_(linear.bias);
    }

    /// <summary>A Haar-random [rows, columns] matrix with orthonormal rows or columns (whichever are fewer), times <paramref name="gain"/>:
    /// torch's orthogonal_ (QR of a Gaussian matrix, signs fixed by R's diagonal), drawn from the global generator.</summary>
    static Tensor RandomOrthogonal(long rows, long columns, double gain)
    {
        var matrix = empty(rows, columns);
        nn.init.orthogonal_(matrix, gain);
        return matrix;
    }

    /// <summary>Initialises an embedding table.</summary>
    public static void Embedding(Embedding embedding, ModelInit init) =>
        Normal(embedding, init == ModelInit.PyTorch ? 1.0 : Gpt2Std);

    /// <summary>Initialises one matrix of a sublayer.</summary>
    /// <param name="block">The block's index, 0-based.</param>
    /// <param name="sublayers">Sublayers in the model (2 per block).</param>
    /// <param name="intoStream">The matrix writes into the residual stream (attention's and the MLP's c_proj).</param>
    /// <param name="fused">How many matrices of equal shape the Linear stacks (attention's q, k, v: 3); fan_out is one's.</param>
    public static void Matrix(Linear linear, ModelInit init, int block, int sublayers, bool intoStream, int fused = 1)
    {
        long fanOut = linear.weight!.shape[0] / fused, fanIn = linear.weight.shape[1];
        switch (init)
        {
            case ModelInit.Gpt2:
                Normal(linear, intoStream ? Gpt2Std / Math.Sqrt(sublayers) : Gpt2Std);
                break;
            case ModelInit.PyTorch:
                double bound = 1 / Math.Sqrt(fanIn);
                Uniform(linear, bound, bound);
                break;
            case ModelInit.DsInit:
                Uniform(linear, Math.Sqrt(6.0 / (fanIn + fanOut)) / Math.Sqrt(block + 1), 0);
                break;
        }
    }
}
