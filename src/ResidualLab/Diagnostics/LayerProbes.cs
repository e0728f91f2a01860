using ResidualLab.Data;
using ResidualLab.Models;
using ResidualLab.Training;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace ResidualLab.Diagnostics;

/// <summary>One val loss per block of a probed model (index 0 at the input side).</summary>
public sealed record LayerLosses(string Name, IReadOnlyList<double> Losses)
{
    public IEnumerable<Diagnostic> ToDiagnostics(int step) => Losses.Select((loss, i) => new Diagnostic(step, Name, i, loss));
}

/// <summary>
/// Post-hoc probes of a trained GPT, each a val loss over the same fixed batches as training's val_loss
/// (<see cref="Trainer.FixedBatchLoss"/>):
/// <list type="bullet">
/// <item>lesion (Veit et al. 2016, arXiv 1605.06431): block i replaced by the identity on the stream
/// (for multi-stream schemes on all streams);</item>
/// <item>swap: blocks i and i + 1 exchanged;</item>
/// <item>logit lens: block i's resid_post decoded as if it were the last (Reduce, final norm, head).</item>
/// </list>
/// The model is put in eval mode.
/// </summary>
public sealed class LayerProbes(Gpt model, TokenSequence tokens, int batchSize, int batches, Device device)
{
    public const string Lesion = "lesion_val_loss";
    public const string Swap = "swap_val_loss";
    public const string LogitLens = "logit_lens_val_loss";

    int Depth => model.Blocks.Count;

    /// <summary>The intact model's val loss, computed as the probes compute theirs.</summary>
    public double Intact() => MeanLosses(1, idx => [model.call(idx)])[0];

    public LayerLosses Lesions() => new(Lesion, MeanLosses(Depth, idx =>
        Enumerable.Range(0, Depth).Select(i => Run(idx, Order().Select(b => b == i ? -1 : b).ToList())).ToList()));

    /// <summary>Index i: blocks i and i + 1 swapped (n_layer - 1 values).</summary>
    public LayerLosses Swaps() => new(Swap, MeanLosses(Depth - 1, idx =>
        Enumerable.Range(0, Depth - 1).Select(i =>
        {
            var order = Order();
            (order[i], order[i + 1]) = (order[i + 1], order[i]);
            return Run(idx, order);
        }).ToList()));

    public LayerLosses LogitLenses() => new(LogitLens, MeanLosses(Depth, idx =>
    {
        var posts = new List<Tensor>(Depth);
        model.Forward(idx, (_, post) => posts.Add(post));
        return posts.Select(p => model.Head(model.Connection.Reduce(p))).ToList();
    }));

    List<int> Order() => Enumerable.Range(0, Depth).ToList();

    Tensor Run(Tensor idx, IReadOnlyList<int> plan) => model.Head(model.Forward(idx, null, plan));

    /// <summary>Mean cross-entropy over the fixed batches of each of <paramref name="count"/> logits the forward gives.</summary>
    double[] MeanLosses(int count, Func<Tensor, IReadOnlyList<Tensor>> logits)
    {
        model.eval();
        var batcher = new TokenBatcher(tokens, batchSize, model.Config.BlockSize, Trainer.EvalSeed);
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
