using static TorchSharp.torch;

namespace ResidualLab.Connections;

// Axes: ... leading (batch) axes, s streams.

/// <summary>
/// The maps of a multi-stream connection's last forward pass, written x' = Res x + Post F(Pre x):
/// Pre [..., s] (the read), Post [..., s] (the write of the sublayer's output), Res [..., s, s]
/// (row: the stream written, column: the stream read). Static maps have no leading axes.
/// </summary>
internal sealed record StreamMaps(Tensor Pre, Tensor Post, Tensor Res);

/// <summary>
/// A multi-stream width step: the <paramref name="Read"/> [..., d] the sublayer's norm takes, the <paramref name="Maps"/>,
/// the depth matrix <paramref name="Depth"/> = [Res | Post] [..., s, s + 1] that <see cref="Streams.Write"/> takes, and the
/// <paramref name="Stream"/> [..., s, d] the depth step reads: the width step's input, or the same values returned by a fused
/// kernel so that the depth step's gradient of the stream comes back through that kernel (which adds it in its own pass).
/// </summary>
internal sealed record WidthStep(Tensor Read, StreamMaps Maps, Tensor Depth, Tensor Stream)
{
    /// <summary>From the maps, with the depth matrix formed from them (the tensor-operation path).</summary>
    public static WidthStep FromMaps(Tensor read, StreamMaps maps, Tensor stream) =>
        new(read, maps, cat([maps.Res, maps.Post.unsqueeze(-1)], -1), stream);

    /// <summary>From a fused kernel's read, H_pre, depth matrix and stream; Res and Post are views of the depth matrix.</summary>
    public static WidthStep FromDepth(Tensor read, Tensor pre, Tensor depth, Tensor stream)
    {
        long s = depth.shape[^2];
        var res = depth[TensorIndex.Ellipsis, TensorIndex.Slice(0, s)];
        var post = depth[TensorIndex.Ellipsis, s];
        return new(read, new StreamMaps(pre, post, res), depth, stream);
    }
}

/// <summary>A connection that mixes n residual streams (Hyper-Connections, mHC) and exposes its last maps to probes.</summary>
internal interface IStreamMixing
{
    /// <summary>The maps of the last <see cref="Connection.Prepare"/>; null before the first. Valid while that pass's tensors live.</summary>
    StreamMaps? LastMaps { get; }

    /// <summary>The parameters that set H_res directly (mHC: the bias of its logits; HC: the static matrix):
    /// the training probe reads the gradient that reaches them. Empty: not reported.</summary>
    IEnumerable<TorchSharp.Modules.Parameter> ResidualMixingParameters => [];
}
