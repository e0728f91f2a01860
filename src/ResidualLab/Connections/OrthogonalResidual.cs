using static TorchSharp.torch;

namespace ResidualLab.Connections;

// Axes: b batch, t position, d width (the last axis).

/// <summary>
/// Orthogonal residual update: the pre-norm sublayer's output f = F(LN(x)) enters the stream only through
/// its part orthogonal to the stream, x_{l+1} = x_l + f_perp, f_perp = f - (&lt;x, f&gt; / (&lt;x, x&gt; + eps)) x,
/// per token over the width.
/// Oh et al. 2025, "Revisiting Residual Connections: Orthogonal Updates for Stable and Efficient Deep
/// Networks" (arXiv 2505.11881), eq. 3 (their feature-wise projection for transformers). eps = 1e-6 keeps a
/// zero stream finite; images (channel-last) project each pixel's channel vector.
/// On the CIFAR ResNet: projection per pixel over channels.
/// </summary>
public sealed record OrthogonalScheme(double Eps = OrthogonalScheme.DefaultEps) : ConnectionScheme
{
    /// <summary>The default eps added to &lt;x, x&gt;.</summary>
    public const double DefaultEps = 1e-6;

    /// <summary>eps added to &lt;x, x&gt; in the projection, in [0, 1].</summary>
    public double Eps { get; } = SchemeArguments.InRange(Eps, 0, 1, "orthogonal", "eps");

    /// <inheritdoc/>
    public override string Name => "orthogonal";
    /// <inheritdoc/>
    public override Connection Build(ConnectionSite site) => new OrthogonalResidual(site, Eps);
    /// <summary>LN(x) 7 d; &lt;x, y&gt; and &lt;x, x&gt; 2 d each; y - c x 2 d; x + that d.</summary>
    internal override double ForwardFlops(ConnectionSite site) => ConnectionFlops.LayerNorm(site.Width) + 7.0 * site.Width;
    /// <inheritdoc/>
    public override IReadOnlyDictionary<string, object> Options => new Dictionary<string, object> { ["eps"] = Eps };
}

internal sealed class OrthogonalResidual : Connection
{
    readonly nn.Module<Tensor, Tensor> norm;
    readonly double eps;

    public OrthogonalResidual(ConnectionSite site, double eps) : base(nameof(OrthogonalResidual))
    {
        norm = site.MakeNorm();
        this.eps = eps;
        RegisterComponents();
    }

    public override Branch Prepare(Tensor stream, LayerContext ctx) => new(norm.call(stream), stream);

    public override Tensor Combine(Tensor output, Branch branch, LayerContext ctx) => branch.Stream + Orthogonal(output, branch.Stream, eps);

    /// <summary>The part of <paramref name="f"/> orthogonal to <paramref name="x"/>, per vector over the last axis.</summary>
    public static Tensor Orthogonal(Tensor f, Tensor x, double eps)
    {
        var along = (x * f).sum(-1, keepdim: true) / ((x * x).sum(-1, keepdim: true) + eps); // [..., 1]
        return f - along * x;
    }
}
