using TorchSharp.Modules;
using static TorchSharp.torch;

namespace ResidualLab.Layers;

/// <summary>
/// RMSNorm over the last dimension: y = x / sqrt(mean(x^2) + eps) * w, w initialised to 1.
/// Zhang and Sennrich 2019, "Root Mean Square Layer Normalization" (arXiv 1910.07467).
/// The statistics are computed in fp32 (float64 inputs stay float64).
/// </summary>
internal sealed class RMSNorm : nn.Module<Tensor, Tensor>
{
    public const double DefaultEps = 1e-6;

    readonly Parameter weight;
    readonly double eps;

    public RMSNorm(long width, double eps = DefaultEps) : base(nameof(RMSNorm))
    {
        weight = nn.Parameter(ones(width));
        this.eps = eps;
        RegisterComponents();
    }

    public override Tensor forward(Tensor x) => x * InverseRms(x, eps) * weight;

    /// <summary>The learned scale w [width].</summary>
    public Parameter Weight => weight;

    /// <summary>The epsilon added to the mean square.</summary>
    public double Eps => eps;

    /// <summary>
    /// 1 / sqrt(mean(x^2) + eps) over the last axis, [..., 1], computed in fp32 and returned in x's dtype.
    /// mean(x^2) is taken as |x|^2 / width: one fused reduction (and one pass back) instead of a squared copy of x.
    /// </summary>
    public static Tensor InverseRms(Tensor x, double eps = DefaultEps)
    {
        var xf = x.dtype == ScalarType.Float64 ? x : x.to(ScalarType.Float32);
        var norm = linalg.vector_norm(xf, dims: [-1], keepdim: true);
        return (norm.square() / x.shape[^1] + eps).rsqrt().to(x.dtype);
    }
}
