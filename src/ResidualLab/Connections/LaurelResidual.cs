using TorchSharp.Modules;
using static TorchSharp.torch;

namespace ResidualLab.Connections;

// Axes: b batch, t position, d width (the last axis); r the rank of LR; k earlier streams of PA.

/// <summary>
/// LAuReL, the learned augmented residual: x_{i+1} = alpha f(x_i) + g(x_i, x_{i-1}, ...), f(x) = F(LN(x))
/// the pre-norm sublayer and alpha a learned scalar. Three forms of g:
/// <list type="bullet">
/// <item>rw (residual weights): g = beta x_i, beta a learned scalar.</item>
/// <item>lr (low rank): g = x_i + B A x_i, A [r, d], B [d, r].</item>
/// <item>pa (previous activations): g = x_i + sum_{j=1..k} gamma_j x_{i-j} over the k streams before x_i
/// (fewer near the input), gamma learned.</item>
/// </list>
/// Menghani, Kumar and Kumar 2024, "LAuReL: Learned Augmented Residual Layer" (arXiv 2411.07501), sec. 2.
/// Choices where the paper leaves them open: every form starts as the pre-norm residual (alpha = beta = 1,
/// B = 0 with A ~ N(0, 1/d), gamma = 0); PA adds the earlier streams themselves (the paper allows a
/// low-rank map of each) and reads the streams before each residual sublayer (attention and MLP apart).
/// </summary>
public sealed record LaurelScheme(string Variant = "rw", int Rank = LaurelScheme.DefaultRank, int Previous = LaurelScheme.DefaultPrevious)
    : ConnectionScheme
{
    /// <summary>The default rank r of the low-rank variant.</summary>
    public const int DefaultRank = 16;
    /// <summary>The default number of earlier streams the previous-activations variant adds.</summary>
    public const int DefaultPrevious = 4;
    /// <summary>The variants: rw (learned residual weight), lr (low rank), pa (previous activations).</summary>
    public static readonly string[] Variants = ["rw", "lr", "pa"];

    /// <summary>The variant, one of <see cref="Variants"/>.</summary>
    public string Variant { get; } = SchemeArguments.OneOf(Variant, Variants, "laurel", "variant");
    /// <summary>lr: the rank r of B A, in [1, 4096].</summary>
    public int Rank { get; } = SchemeArguments.InRange(Rank, 1, 4096, "laurel", "rank");
    /// <summary>pa: how many earlier streams are added, in [1, 1024].</summary>
    public int Previous { get; } = SchemeArguments.InRange(Previous, 1, 1024, "laurel", "previous");

    /// <inheritdoc/>
    public override string Name => "laurel";
    /// <inheritdoc/>
    public override Connection Build(ConnectionSite site) => new LaurelResidual(site, this);
    /// <summary>
    /// LN(x) (7 d) and alpha y + g (2 d), with g: rw beta x (d); lr x + B A x (4 r d + d); pa x + sum_j gamma_j x_(i-j)
    /// over the p = min(previous, i) earlier streams (2 p d + d).
    /// </summary>
    internal override double ForwardFlops(ConnectionSite site)
    {
        int d = site.Width;
        double g = Variant switch
        {
            "lr" => 2 * ConnectionFlops.MatVec(d, Math.Min(Rank, d)) + d,
            "pa" => ConnectionFlops.WeightedSum(Math.Min(Previous, site.SublayerIndex), d) + d,
            _ => d,
        };
        return ConnectionFlops.LayerNorm(d) + 2.0 * d + g;
    }
    /// <inheritdoc/>
    public override IReadOnlyDictionary<string, object> Options => new Dictionary<string, object>
    {
        ["variant"] = Variant, ["rank"] = (long)Rank, ["previous"] = (long)Previous,
    };
}

internal sealed class LaurelResidual : Connection
{
    readonly nn.Module<Tensor, Tensor> norm;
    readonly Parameter alpha;        // weight of f
    readonly Parameter? beta;        // rw: weight of x_i
    readonly Parameter? down, up;    // lr: A [r, d], B [d, r]
    readonly Parameter? gamma;       // pa: [k], weights of x_{i-1}, ..., x_{i-k}
    readonly int index;

    public LaurelResidual(ConnectionSite site, LaurelScheme scheme) : base(nameof(LaurelResidual))
    {
        index = site.SublayerIndex;
        norm = site.MakeNorm();
        alpha = nn.Parameter(ones(1));
        switch (scheme.Variant)
        {
            case "rw":
                beta = nn.Parameter(ones(1));
                break;
            case "lr":
                int rank = Math.Min(scheme.Rank, site.Width);
                down = nn.Parameter(normal(0, 1 / Math.Sqrt(site.Width), [rank, site.Width]));
                up = nn.Parameter(zeros(site.Width, rank));
                break;
            case "pa":
                int previous = Math.Min(scheme.Previous, index);
                if (previous > 0) gamma = nn.Parameter(zeros(previous));
                break;
            default:
                throw new ArgumentException($"LAuReL variant '{scheme.Variant}' is not one of {string.Join(", ", LaurelScheme.Variants)}");
        }
        RegisterComponents();
    }

    public override Branch Prepare(Tensor stream, LayerContext ctx) => new(norm.call(stream), stream);

    public override Tensor Combine(Tensor output, Branch branch, LayerContext ctx)
    {
        var x = branch.Stream;
        var g = beta is not null ? beta * x
            : up is not null ? x + x.matmul(down!.t()).matmul(up.t())
            : x + Previous(ctx);
        return alpha * output + g;
    }

    /// <summary>sum_j gamma_j x_{i-j}, read from the streams the model recorded before this sublayer.</summary>
    Tensor Previous(LayerContext ctx)
    {
        if (gamma is null) return zeros(1, dtype: alpha.dtype, device: alpha.device);
        if (ctx.History.Count != index + 1)
            throw new InvalidOperationException(
                $"LAuReL-PA at sublayer {index} needs every earlier stream in LayerContext.History; found {ctx.History.Count} entries");
        Tensor sum = gamma[0] * ctx.History[index - 1];
        for (int j = 1; j < gamma.shape[0]; j++) sum = sum + gamma[j] * ctx.History[index - 1 - j];
        return sum;
    }
}
