using static TorchSharp.torch;

namespace ResidualLab.Connections;

// Axes: ... leading (batch) axes, s streams.

/// <summary>
/// The maps of a multi-stream connection's last forward pass, written x' = Res x + Post F(Pre x):
/// Pre [..., s] (the read), Post [..., s] (the write of the sublayer's output), Res [..., s, s]
/// (row: the stream written, column: the stream read). Static maps have no leading axes.
/// </summary>
internal sealed record StreamMaps(Tensor Pre, Tensor Post, Tensor Res);

/// <summary>A connection that mixes n residual streams (Hyper-Connections, mHC) and exposes its last maps to probes.</summary>
internal interface IStreamMixing
{
    /// <summary>The maps of the last <see cref="Connection.Prepare"/>; null before the first. Valid while that pass's tensors live.</summary>
    StreamMaps? LastMaps { get; }

    /// <summary>The parameters that set H_res directly (mHC: the bias of its logits; HC: the static matrix):
    /// the training probe reads the gradient that reaches them. Empty: not reported.</summary>
    IEnumerable<TorchSharp.Modules.Parameter> ResidualMixingParameters => [];
}
