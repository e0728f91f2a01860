using static TorchSharp.torch;

namespace ResidualLab.Connections;

// Axes: ... leading axes (b batch, t position), s streams, d width (the last axis).

/// <summary>
/// How alike the n streams of a multi-stream residual are: the mean over positions and over the
/// pairs i &lt; j of the cosine similarity cos(H_i, H_j) of their d-vectors. 1 means the streams have
/// collapsed into one direction (as an expanded stream is at init); the n-stream schemes only add
/// capacity when it falls below 1.
/// </summary>
public static class StreamSimilarity
{
    /// <summary>Mean pairwise cosine similarity of the streams of <paramref name="stream"/> [..., s, d] (s &gt;= 2), in float64.</summary>
    public static double Mean(Tensor stream)
    {
        if (stream.dim() < 2 || stream.shape[^2] < 2)
            throw new ArgumentException($"stream similarity needs at least 2 streams on the second-to-last axis, got shape [{string.Join(", ", stream.shape)}]", nameof(stream));
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        long s = stream.shape[^2];
        var unit = nn.functional.normalize(stream.to(ScalarType.Float64), p: 2, dim: -1, eps: 1e-12);
        var gram = unit.matmul(unit.transpose(-1, -2));                   // [..., s, s]
        var offDiagonal = gram.sum([-1, -2]) - gram.diagonal(0, -2, -1).sum(-1);
        return (offDiagonal / (s * (s - 1))).mean().item<double>();
    }
}
