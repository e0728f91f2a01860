using TorchSharp.Modules;
using static TorchSharp.torch;

namespace ResidualLab.Layers;

/// <summary>
/// Batch normalisation (Ioffe and Szegedy 2015, arXiv 1502.03167) over the last dimension: x [..., c]
/// is normalised per channel over every other axis. This is the norm the vision models hand to their
/// connections, whose streams are channel-last ([b, y, x, c] for convolutions, [b, d] for the MLP).
/// </summary>
internal sealed class BatchNormLastDim : nn.Module<Tensor, Tensor>
{
    readonly BatchNorm1d bn;

    public BatchNormLastDim(long channels) : base(nameof(BatchNormLastDim))
    {
        bn = nn.BatchNorm1d(channels);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        long c = x.shape[^1];
        return bn.call(x.reshape(-1, c)).view(x.shape); // [..., c] -> [n, c] -> [..., c]
    }
}
