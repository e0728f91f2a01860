using ResidualLab.Connections.Kernels;
using static TorchSharp.torch;

namespace ResidualLab.Connections;

// Axes: ... leading axes (b batch, t position for the GPT), s streams, d width (always the last axis).

/// <summary>
/// The n-stream residual shared by Hyper-Connections and mHC: the stream is [..., s, d]; a sublayer
/// reads one d-wide mixture of the streams (it runs once, d-wide, never once per stream) and the
/// depth step writes H' = D [H; y] with one depth matrix D [..., s, s + 1] (the residual mixing in
/// its first s columns, the output weights in the last).
/// </summary>
internal static class Streams
{
    /// <summary>[..., d] to [..., s, d]: every stream starts as a copy of the input.</summary>
    public static Tensor Expand(Tensor x, int streams)
    {
        var shape = x.shape.ToArray();
        var expanded = shape[..^1].Append(streams).Append(shape[^1]).ToArray();
        return x.unsqueeze(-2).expand(expanded);
    }

    /// <summary>[..., s, d] to [..., d]: the sum over the streams.</summary>
    public static Tensor Reduce(Tensor stream) => stream.sum(-2);

    /// <summary>
    /// The width step's read: h = sum_s w_s H_s. <paramref name="weights"/> [..., s] or [s].
    /// On the CPU it runs as <see cref="StreamReadKernel"/>, elsewhere as <see cref="ReadWithTensorOps"/>.
    /// </summary>
    public static Tensor Read(Tensor weights, Tensor stream) => ReadForDepthStep(weights, stream).Read;

    /// <summary>
    /// <see cref="Read"/>, and the stream for the depth step to read (<see cref="WidthStep.Stream"/>): on the CPU the
    /// kernel's stream output, through which the depth step's gradient of the stream comes back; elsewhere the stream.
    /// </summary>
    public static (Tensor Read, Tensor Stream) ReadForDepthStep(Tensor weights, Tensor stream)
    {
        if (!StreamReadKernel.Applies(weights, stream)) return (ReadWithTensorOps(weights, stream), stream);
        var outputs = StreamReadKernel.apply(weights.dim() == 1 ? weights : weights.expand(stream.shape[..^1]), stream);
        return (outputs[0], outputs[1]);
    }

    /// <summary>The definition of <see cref="Read"/>, as a broadcast product and a sum (any device).</summary>
    public static Tensor ReadWithTensorOps(Tensor weights, Tensor stream) => (weights.unsqueeze(-1) * stream).sum(-2);

    /// <summary>
    /// The depth step: H'_j = sum_i D_ji H_i + D_js y, with <paramref name="depth"/> [..., s, s + 1] or [s, s + 1] and the
    /// <paramref name="output"/> y [..., d] added to every stream, or [..., s, d], y_j to stream j (the fractions of
    /// Frac-Connections). On the CPU it runs as <see cref="StreamWriteKernel"/>, elsewhere as <see cref="WriteWithTensorOps"/>.
    /// </summary>
    public static Tensor Write(Tensor depth, Tensor stream, Tensor output)
    {
        if (!StreamWriteKernel.Applies(depth, stream, output)) return WriteWithTensorOps(depth, stream, output);
        var shape = stream.shape;
        long[] depthShape = [.. shape[..^1], shape[^2] + 1];
        bool perStream = output.dim() == stream.dim();
        return StreamWriteKernel.apply(depth.dim() == 2 ? depth : depth.expand(depthShape), stream,
            perStream ? output.expand(shape) : output.expand([.. shape[..^2], shape[^1]]))[0];
    }

    /// <summary>The definition of <see cref="Write"/>, as batched matrix products (any device).</summary>
    public static Tensor WriteWithTensorOps(Tensor depth, Tensor stream, Tensor output)
    {
        long s = stream.shape[^2];
        if (output.dim() != stream.dim()) return depth.matmul(cat([stream, output.unsqueeze(-2)], -2));
        return depth[TensorIndex.Ellipsis, TensorIndex.Slice(0, s)].matmul(stream) + depth[TensorIndex.Ellipsis, TensorIndex.Slice(s, null)] * output;
    }
}
