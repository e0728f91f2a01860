using ResidualLab.Connections.Kernels;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace ResidualLab.Connections;

// Axes: b batch, t position, f fractions (m of them), d width (the last axis), c = d / m a fraction's width.

/// <summary>
/// Frac-Connections: Hyper-Connections over m fractions of the hidden state instead of n copies of it, so the
/// stream keeps its width d. With h split as H [..., m, c], the sublayer reads h' = merge(A_m^T H), runs once
/// on LN(h'), and writes H' = A_r^T H + diag(B) split(F(LN(h'))). Static: A_m [m, m], A_r [m, m], B [m]
/// are parameters; dynamic: each gets a per-token term from the normalised hidden state split into fractions,
/// A_m += s_a tanh(N(h)_f W_m), A_r += s_a tanh(N(h)_f W_r), B += s_b tanh(N(h)_f W_b) (row f from fraction f),
/// W = 0 and s_a = s_b = 0.01 at init, as in Hyper-Connections.
/// Zhu et al. 2025, "Frac-Connections: Fractional Extension of Hyper-Connections" (arXiv 2503.14125);
/// reference code lucidrains/hyper-connections (num_fracs). Chosen init: A_m = A_r = I, B = 1, which is the
/// pre-norm model exactly (the reference code's init for a single stream feeds fraction 0 to every input
/// fraction instead). m = 1 is pre-norm with a learned scalar read, residual and write.
/// </summary>
public sealed record FracConnectionsScheme(int Fracs = FracConnectionsScheme.DefaultFracs, bool Dynamic = true) : ConnectionScheme
{
    /// <summary>The default number of fractions m.</summary>
    public const int DefaultFracs = 4;

    /// <summary>m, the number of fractions, in [1, 1024] (it must also divide the model's width).</summary>
    public int Fracs { get; } = SchemeArguments.InRange(Fracs, 1, 1024, "frac-connections", "fracs");

    /// <inheritdoc/>
    public override string Name => "frac-connections";
    /// <inheritdoc/>
    public override Connection Build(ConnectionSite site) => new FracConnections(site, Fracs, Dynamic);
    /// <summary>
    /// With c = d / m: the read A_m^T [m, c] (2 m d), LN of it (7 d), the residual A_r^T [m, c] (2 m d) and
    /// x + diag(B) y (2 d). Dynamic adds N(h) (7 d), its fractions times [W_m | W_r | W_b] [c, 2m + 1]
    /// (2 d (2m + 1)), tanh (m (2m + 1)) and the scaled sums with the static weights (2 m (2m + 1)).
    /// </summary>
    internal override double ForwardFlops(ConnectionSite site)
    {
        int d = site.Width, m = Fracs;
        double dynamic = Dynamic ? ConnectionFlops.LayerNorm(d) + m * ConnectionFlops.MatVec(d / m, 2 * m + 1) + 3.0 * m * (2 * m + 1) : 0;
        return dynamic + 2.0 * m * d + ConnectionFlops.LayerNorm(d) + 2.0 * m * d + 2.0 * d;
    }
    /// <inheritdoc/>
    public override IReadOnlyDictionary<string, object> Options =>
        new Dictionary<string, object> { ["fracs"] = (long)Fracs, ["dynamic"] = Dynamic };
}

internal sealed class FracConnections : Connection
{
    const double DynamicScaleInit = 0.01;

    readonly nn.Module<Tensor, Tensor> norm;     // the sublayer's pre-norm
    readonly Parameter read;                     // A_m [m (from), m (to)]
    readonly Parameter residual;                 // A_r [m (from), m (to)]
    readonly Parameter write;                    // B [m]
    readonly nn.Module<Tensor, Tensor>? dynamic_norm;
    readonly Parameter? dynamic_proj;            // [W_m | W_r | W_b], [c, 2m + 1]
    readonly Parameter? read_scale;              // s_a
    readonly Parameter? write_scale;             // s_b
    readonly int m;

    public FracConnections(ConnectionSite site, int fracs, bool dynamic) : base(nameof(FracConnections))
    {
        if (site.Width % fracs != 0)
            throw new ArgumentException($"connection.fracs = {fracs} must divide the width {site.Width}; choose a divisor of it");
        m = fracs;
        norm = site.MakeNorm();
        read = nn.Parameter(eye(m));
        residual = nn.Parameter(eye(m));
        write = nn.Parameter(ones(m));
        if (dynamic)
        {
            dynamic_norm = site.MakeNorm();
            dynamic_proj = nn.Parameter(zeros(site.Width / m, 2 * m + 1));
            read_scale = nn.Parameter(full(1, DynamicScaleInit));
            write_scale = nn.Parameter(full(1, DynamicScaleInit));
        }
        RegisterComponents();
    }

    Tensor Split(Tensor h) => h.unflatten(h.dim() - 1, [m, h.shape[^1] / m]); // [..., m, c]

    public override Branch Prepare(Tensor stream, LayerContext ctx)
    {
        var (input, depth, forDepthStep) = Width(stream);
        return new(norm.call(input), forDepthStep, depth);
    }

    /// <summary>
    /// The read merge(A_m^T H) [..., d], the depth matrix [A_r^T | B] [..., m, m + 1] and the stream for the depth step: on
    /// the CPU (with a LayerNorm as the dynamic norm) one fused kernel (<see cref="FracWidthStepKernel"/>), elsewhere
    /// <see cref="WidthWithTensorOps"/>; the same function.
    /// </summary>
    public (Tensor Read, Tensor Depth, Tensor Stream) Width(Tensor stream)
    {
        if (!FracWidthStepKernel.Applies(stream, read)) return WidthWithTensorOps(stream);
        if (dynamic_proj is null)
        {
            // Static: one depth matrix for every token, whose gradient the write kernel sums itself.
            var (input, _, forDepthStep) = FracWidthStepKernel.Run(stream, null, null, null, read, residual, write, null, 0);
            return (input, cat([residual.transpose(-1, -2), write.unsqueeze(-1)], -1), forDepthStep);
        }
        if (dynamic_norm is not LayerNorm { weight: { } gamma } layerNorm) return WidthWithTensorOps(stream);
        return FracWidthStepKernel.Run(stream, dynamic_proj, gamma, layerNorm.bias ?? zeros_like(gamma), read, residual, write,
            cat([read_scale!, write_scale!]), layerNorm.eps);
    }

    /// <summary>The width step as tensor operations differentiated by autograd (any device): the definition.</summary>
    public (Tensor Read, Tensor Depth, Tensor Stream) WidthWithTensorOps(Tensor stream)
    {
        var fractions = Split(stream);
        Tensor am = read, ar = residual, b = write;
        if (dynamic_proj is not null)
        {
            var w = Split(dynamic_norm!.call(stream)).matmul(dynamic_proj).tanh();                 // [..., m, 2m + 1]
            am = read + read_scale! * w[TensorIndex.Ellipsis, TensorIndex.Slice(0, m)];            // [..., m, m]
            ar = residual + read_scale! * w[TensorIndex.Ellipsis, TensorIndex.Slice(m, 2 * m)];    // [..., m, m]
            b = write + write_scale! * w[TensorIndex.Ellipsis, 2 * m];                             // [..., m]
        }
        var input = am.transpose(-1, -2).matmul(fractions).flatten(-2);                            // [..., d]
        var depth = cat([ar.transpose(-1, -2), b.unsqueeze(-1)], -1);                              // [..., m, m + 1]
        return (input, depth, stream);
    }

    /// <summary>H' = A_r^T H + diag(B) split(y): the n-stream depth step over the fractions, each with its own fraction of y.</summary>
    public override Tensor Combine(Tensor output, Branch branch, LayerContext ctx) =>
        Streams.Write(branch.Mix!, Split(branch.Stream), Split(output)).flatten(-2);
}
