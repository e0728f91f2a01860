using ResidualLab.Hooks;
using ResidualLab.Models;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace ResidualLab.Diagnostics;

// Axes: b batch, t position, s streams, d model width.

/// <summary>
/// Activation patching (Meng et al. 2022, arXiv 2202.05262; Heimersheim and Nanda 2024, arXiv 2404.15255) and
/// attribution patching, its first-order approximation (Nanda 2023; Syed et al. 2023, arXiv 2310.10348).
/// The corrupted input is the clean one with the token at one position p replaced (by the token at p of
/// another sequence of the batch, rolled by one); the metric m is the cross-entropy of the clean next tokens
/// at positions p..t-1, the only ones the corruption can reach. For each hook point h (resid_pre, resid_mid,
/// resid_post of every block) and position p the corrupted run is repeated with h at p patched to its clean
/// value: restored(h) = (m_corrupt - m_patched) / (m_corrupt - m_clean), 1 when the patch carries all that
/// the corruption took away, 0 when nothing. Attribution patching estimates m_patched from one backward pass
/// of the corrupted run: m_patched ~ m_corrupt + grad_h m . (a_clean - a_corrupt) at p. Reported side by side,
/// with their Pearson correlation and largest difference over the hook points. When the corruption does not
/// change the metric (a model that ignores the position), the fractions are undefined (NaN).
/// </summary>
internal static class ActivationPatching
{
    /// <summary>Readings' names in the store, index 3 block + 0 resid_pre / 1 resid_mid / 2 resid_post.</summary>
    public const string Restored = "patch_restored", AttributionRestored = "attribution_patch_restored";

    public sealed record Result(int Position, double CleanLoss, double CorruptLoss, IReadOnlyList<string> Hooks,
        IReadOnlyList<double> Restored, IReadOnlyList<double> AttributionRestored)
    {
        public double Correlation => Pearson(Restored, AttributionRestored);
        public double MaxDifference => Restored.Zip(AttributionRestored, (a, b) => Math.Abs(a - b)).DefaultIfEmpty(0).Max();
    }

    public static Result Run(Gpt model, Tensor idx, Tensor targets)
    {
        using var scope = NewDisposeScope();
        model.eval();
        int p = (int)idx.shape[1] / 2;
        var corrupt = idx.clone();
        corrupt[TensorIndex.Colon, p] = idx[TensorIndex.Colon, p].roll(1, 0);
        var names = HookNames.Residual(model.Blocks.Count).ToList();
        double Metric(Tensor logits) => Loss(logits, targets, p).item<float>();

        ActivationCache clean;
        double mClean, mCorrupt;
        var patched = new double[names.Count];
        using (no_grad())
        {
            Tensor cleanLogits;
            (cleanLogits, clean) = model.RunWithCache(idx, names.Contains);
            mClean = Metric(cleanLogits);
            mCorrupt = Metric(model.call(corrupt));
            for (int i = 0; i < names.Count; i++)
            {
                string name = names[i];
                patched[i] = Metric(model.Run(corrupt, new HookSet().Add(name, (_, a) =>
                {
                    var x = a.clone();
                    x[TensorIndex.Colon, p] = clean[name][TensorIndex.Colon, p];
                    return x;
                })));
            }
        }

        var corrupted = new ActivationCache();
        var hooks = new HookSet().Add(names.Contains, (name, a) =>
        {
            if (a.requires_grad) a.retain_grad();
            corrupted.Set(name, a);
            return a;
        });
        var input = model.Run(corrupt, hooks);
        Loss(input, targets, p).backward();
        var estimates = new double[names.Count];
        using (no_grad())
            for (int i = 0; i < names.Count; i++)
            {
                var a = corrupted[names[i]];
                var delta = clean[names[i]][TensorIndex.Colon, p] - a[TensorIndex.Colon, p];
                estimates[i] = mCorrupt + (a.grad![TensorIndex.Colon, p] * delta).sum().item<float>();
            }
        foreach (var parameter in model.parameters()) parameter.grad = null;

        double gap = mCorrupt - mClean;
        return new Result(p, mClean, mCorrupt, names,
            patched.Select(m => (mCorrupt - m) / gap).ToList(), estimates.Select(m => (mCorrupt - m) / gap).ToList());
    }

    static Tensor Loss(Tensor logits, Tensor targets, int from)
    {
        var tail = logits[TensorIndex.Colon, TensorIndex.Slice(from, null)];
        return F.cross_entropy(tail.reshape(-1, tail.shape[^1]), targets[TensorIndex.Colon, TensorIndex.Slice(from, null)].reshape(-1));
    }

    static double Pearson(IReadOnlyList<double> a, IReadOnlyList<double> b)
    {
        double ma = a.Average(), mb = b.Average();
        double cov = a.Zip(b, (x, y) => (x - ma) * (y - mb)).Sum();
        double va = a.Sum(x => (x - ma) * (x - ma)), vb = b.Sum(y => (y - mb) * (y - mb));
        return va == 0 || vb == 0 ? double.NaN : cov / Math.Sqrt(va * vb);
    }
}
