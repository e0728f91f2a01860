using ResidualLab.Connections.Kernels;
using TorchSharp;
using static TorchSharp.torch;

namespace ResidualLab.Connections;

// Axes: ... any leading (batch) axes, n the matrix size.

/// <summary>
/// Sinkhorn-Knopp: from logits [..., n, n] to an approximately doubly stochastic matrix
/// M = SK(exp(logits)): entries positive, rows and columns summing to 1.
/// Sinkhorn 1964; used for mHC's H_res (Xie et al. 2025, arXiv 2512.24880, t_max = 20).
/// <para>
/// The one definition (<see cref="ProjectWithTensorOps"/>): computed in fp32 (float64 inputs stay
/// float64); the per-matrix maximum is subtracted before exp (exact: the normalisations cancel any
/// per-matrix factor; no gradient flows through it); then <c>iterations</c> rounds of row
/// normalisation followed by column normalisation. After the last round the column sums are 1 to
/// rounding; the row sums only converge with the number of rounds.
/// </para>
/// <para>
/// On the CPU the same function runs as one fused kernel (<see cref="SinkhornKernel"/>) with a
/// hand-written backward through every round: 2 t_max small tensor operations per sublayer, and
/// three times as many in autograd's backward, cost as much as a transformer sublayer on the CPU.
/// Elsewhere (CUDA) the tensor operations run.
/// </para>
/// </summary>
internal static class Sinkhorn
{
    public const int DefaultIterations = 20;

    public static Tensor Project(Tensor logits, int iterations = DefaultIterations)
    {
        if (iterations < 1) throw new ArgumentOutOfRangeException(nameof(iterations), "Sinkhorn needs at least one iteration");
        if (logits.device_type != DeviceType.CPU) return ProjectWithTensorOps(logits, iterations);
        var x = logits.dtype == ScalarType.Float64 ? logits : logits.to(ScalarType.Float32);
        return SinkhornKernel.apply(x, iterations).to(logits.dtype);
    }

    /// <summary>The definition, as batched tensor operations differentiated by autograd (any device).</summary>
    public static Tensor ProjectWithTensorOps(Tensor logits, int iterations = DefaultIterations)
    {
        if (iterations < 1) throw new ArgumentOutOfRangeException(nameof(iterations), "Sinkhorn needs at least one iteration");
        var x = logits.dtype == ScalarType.Float64 ? logits : logits.to(ScalarType.Float32);
        var m = (x - x.amax([-2, -1], keepdim: true).detach()).exp();
        for (int i = 0; i < iterations; i++)
        {
            m = m / m.sum(-1, keepdim: true); // rows
            m = m / m.sum(-2, keepdim: true); // columns
        }
        return m.to(logits.dtype);
    }
}
