using static TorchSharp.torch;

namespace ResidualLab.Connections;

/// <summary>
/// Runs a stack of one-sublayer blocks on a scheme's residual stream: Expand, every block in turn
/// (recording each resulting stream in the shared <see cref="LayerContext"/>), Reduce.
/// </summary>
public static class StreamStack
{
    /// <summary>Runs <paramref name="h"/> [..., d] through the blocks; <paramref name="ctx"/>, when given, keeps the streams in its History.</summary>
    public static Tensor Run(ConnectionSpec scheme, IEnumerable<nn.Module<Tensor, LayerContext, Tensor>> blocks, int count, Tensor h,
        LayerContext? ctx = null)
    {
        var stream = scheme.Expand(h);
        ctx ??= new LayerContext(count);
        ctx.History.Add(stream);
        foreach (var block in blocks)
        {
            stream = block.call(stream, ctx);
            ctx.Advance();
            ctx.History.Add(stream);
        }
        return scheme.Reduce(stream);
    }
}
