using ResidualLab.Data;
using ResidualLab.Hooks;
using ResidualLab.Models;
using ResidualLab.Training;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace ResidualLab.Diagnostics;

/// <summary>One val loss per block of a probed model (index 0 at the input side).</summary>
internal sealed record LayerLosses(string Name, IReadOnlyList<double> Losses)
{
    public IEnumerable<Diagnostic> ToDiagnostics(int step) => Losses.Select((loss, i) => new Diagnostic(step, Name, i, loss));
}

/// <summary>
/// Post-hoc probes of a trained GPT through its hook points (<see cref="HookNames"/>), each a val loss over
/// the same fixed batches as training's val_loss (<see cref="Training.Tasks.LanguageModelTask.FixedBatchLoss"/>):
/// <list type="bullet">
/// <item>lesion (Veit et al. 2016, arXiv 1605.06431): block i replaced by the identity on the stream (its
/// resid_post patched with its resid_pre; for multi-stream schemes on all streams);</item>
/// <item>swap: blocks i and i + 1 exchanged (a reordering, not an activation);</item>
/// <item>logit lens: block i's resid_post decoded as if it were the last (Reduce, final norm, head);</item>
/// <item>stream lens (multi-stream schemes): stream s of block i's resid_post decoded alone, index i n + s
/// (the final norm makes the scale of the one stream irrelevant).</item>
/// </list>
/// The model is put in eval mode.
/// </summary>
internal sealed class LayerProbes(Gpt model, TokenSequence tokens, int batchSize, int batches, Device device)
{
    public const string Lesion = "lesion_val_loss";
    public const string Swap = "swap_val_loss";
    public const string LogitLens = "logit_lens_val_loss";
    public const string StreamLens = "stream_lens_val_loss";

    int Depth => model.Blocks.Count;

    /// <summary>The intact model's val loss, computed as the probes compute theirs.</summary>
    public double Intact() => MeanLosses(1, idx => [model.call(idx)])[0];

    public LayerLosses Lesions() => new(Lesion, MeanLosses(Depth, idx =>
        Enumerable.Range(0, Depth).Select(i => model.Run(idx, LesionHooks(i))).ToList()));

    /// <summary>Hooks that make block <paramref name="block"/> the identity on the stream.</summary>
    public static HookSet LesionHooks(int block)
    {
        Tensor? input = null;
        return new HookSet()
            .Add(HookNames.ResidPre(block), (_, x) => input = x)
            .Add(HookNames.ResidPost(block), (_, _) => input!);
    }

    /// <summary>Index i: blocks i and i + 1 swapped (n_layer - 1 values).</summary>
    public LayerLosses Swaps() => new(Swap, MeanLosses(Depth - 1, idx =>
        Enumerable.Range(0, Depth - 1).Select(i =>
        {
            var order = Enumerable.Range(0, Depth).ToList();
            (order[i], order[i + 1]) = (order[i + 1], order[i]);
            return model.Head(model.Forward(idx, order: order));
        }).ToList()));

    public LayerLosses LogitLenses() => new(LogitLens, MeanLosses(Depth, idx =>
    {
        var (_, cache) = model.RunWithCache(idx, n => n.EndsWith("hook_resid_post", StringComparison.Ordinal));
        return Enumerable.Range(0, Depth).Select(i => model.Head(model.Connection.Reduce(cache[HookNames.ResidPost(i)]))).ToList();
    }));

    /// <summary>Null for single-stream schemes.</summary>
    public LayerLosses? StreamLenses()
    {
        int streams = StreamCount();
        if (streams < 2) return null;
        return new(StreamLens, MeanLosses(Depth * streams, idx =>
        {
            var (_, cache) = model.RunWithCache(idx, n => n.EndsWith("hook_resid_post", StringComparison.Ordinal));
            return Enumerable.Range(0, Depth * streams)
                .Select(k => model.Head(cache[HookNames.ResidPost(k / streams)].select(-2, k % streams))).ToList();
        }));
    }

    /// <summary>The number of streams of the residual (1 for single-stream schemes).</summary>
    public int StreamCount()
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var probe = model.Connection.Expand(zeros(1, 1, model.Config.DModel));
        return probe.dim() > 3 ? (int)probe.shape[^2] : 1;
    }

    /// <summary>Mean cross-entropy over the fixed batches of each of <paramref name="count"/> logits the forward gives.</summary>
    double[] MeanLosses(int count, Func<Tensor, IReadOnlyList<Tensor>> logits)
    {
        model.eval();
        var batcher = new TokenBatcher(tokens, batchSize, model.Config.BlockSize, Training.Tasks.LanguageModelTask.EvalSeed);
        var sums = new double[count];
        for (int b = 0; b < batches; b++)
        {
            using var scope = NewDisposeScope();
            using var _ = no_grad();
            var (x, y) = batcher.Next(device);
            var all = logits(x);
            for (int i = 0; i < count; i++)
                sums[i] += F.cross_entropy(all[i].view(-1, all[i].shape[^1]), y.view(-1)).item<float>();
        }
        return sums.Select(s => s / batches).ToArray();
    }
}
