using ResidualLab.Hooks;
using static TorchSharp.torch;

namespace ResidualLab.Connections;

/// <summary>
/// Runs a stack of one-sublayer blocks on a scheme's residual stream: Expand, every block in turn
/// (recording each resulting stream in the shared <see cref="LayerContext"/>), Reduce. The stream before
/// and after block i passes the hook points <c>{prefix}blocks.{i}.hook_resid_pre</c> and <c>hook_resid_post</c>
/// (the vision models' counterpart of the GPT's <see cref="HookNames"/>).
/// </summary>
internal static class StreamStack
{
    /// <summary>Runs <paramref name="h"/> [..., d] through the blocks; <paramref name="ctx"/>, when given, keeps the streams in its
    /// History (and its hooks apply); otherwise a new context with <paramref name="hooks"/>.</summary>
    /// <param name="meanOfStreams">
    /// Reduce a multi-stream scheme's n streams to their mean instead of the scheme's sum. The vision
    /// models chain one stack per stage: the sum multiplies the scale by n at every stage boundary (n^3 at
    /// the classifier of a three-stage ResNet, which has no norm before it: a first loss of 17 to 28
    /// instead of ln 10 with n = 4).
    /// </param>
    public static Tensor Run(ConnectionScheme scheme, IEnumerable<nn.Module<Tensor, LayerContext, Tensor>> blocks, int count, Tensor h,
        LayerContext? ctx = null, bool meanOfStreams = false, HookSet? hooks = null, string prefix = "")
    {
        var stream = scheme.Expand(h);
        long streams = stream.dim() > h.dim() ? stream.shape[^2] : 1; // [..., s, d] when the scheme widened the stream
        ctx ??= new LayerContext(count, hooks);
        ctx.History.Add(stream);
        int i = 0;
        foreach (var block in blocks)
        {
            stream = ctx.Hook(prefix + HookNames.ResidPre(i), stream);
            ctx.History[^1] = stream;
            stream = ctx.Hook(prefix + HookNames.ResidPost(i), block.call(stream, ctx));
            ctx.Advance();
            ctx.History.Add(stream);
            i++;
        }
        var reduced = scheme.Reduce(stream);
        return meanOfStreams && streams > 1 ? reduced / streams : reduced;
    }
}
