using ResidualLab.Connections;
using ResidualLab.Hooks;
using ResidualLab.Models;
using ResidualLab.Training;
using static TorchSharp.torch;

namespace ResidualLab.Diagnostics;

/// <summary>
/// Looks inside the residual stream on probe steps, through the model's hook points (<see cref="HookNames"/>).
/// <see cref="Arm"/> before the step's forward pass; <see cref="Measure"/> after its backward. Readings
/// (index: block, sublayer k = 2 block + 0 attention / 1 MLP, or as noted):
/// <list type="bullet">
/// <item>resid_pre_rms, resid_mid_rms, resid_post_rms (block): RMS over every element of the stream (all streams).</item>
/// <item>update_ratio (sublayer): ||h_out - h_in|| / ||h_in|| over the batch, the stream's relative change by the
/// sublayer; for pre-norm this is ||F(x)|| / ||x||.</item>
/// <item>resid_pre_grad_norm (block): L2 norm of dLoss/d resid_pre (retain_grad on the stream on probe steps only).</item>
/// <item>token_cosine (position: 0 resid_pre of block 0, 2i + 1 resid_mid and 2i + 2 resid_post of block i): the mean cosine
/// between the representations of distinct tokens of a sequence (<see cref="StreamHealth.TokenCosine"/>); near 1 is rank
/// collapse.</item>
/// <item>For <see cref="IStreamMixing"/> connections, token means of h_pre (index k n + i), h_post (k n + i) and
/// h_res (k n^2 + i n + j); h_res_gain_fwd / h_res_gain_bwd (k): the Amax gain of H_res of sublayers 0..k,
/// the largest over the batch's tokens, so the last index is the whole model's; h_res_row_err / h_res_col_err (k):
/// the largest |row sum - 1| and |column sum - 1| of H_res over tokens (for mHC: Sinkhorn's remaining error);
/// stream health (<see cref="StreamHealth"/>): stream_cosine (block, at resid_post), h_res_entropy (k),
/// h_res_uniform_dist (k, of the running product); h_res_grad_norm (k): the gradient norm reaching the
/// parameters that set H_res (<see cref="IStreamMixing.ResidualMixingParameters"/>), and h_res_grad_ratio (k):
/// that over the whole model's gradient norm.</item>
/// </list>
/// Nothing here changes the forward or backward values, so training with probes on is bit-identical to off.
/// </summary>
internal sealed class StreamProbe(Gpt model)
{
    readonly List<(string Name, int Index, Tensor Value)> _forward = [];
    ActivationCache? _cache;

    /// <summary>Reads the residual hook points of the next forward pass (until <see cref="Measure"/>).</summary>
    public void Arm()
    {
        var cache = new ActivationCache();
        _cache = cache;
        model.Hooks = new HookSet().Add(IsResidual, (name, x) =>
        {
            cache.Set(name, x);
            if (name.EndsWith("hook_resid_pre", StringComparison.Ordinal) && x.requires_grad) x.retain_grad();
            return x;
        });
    }

    static bool IsResidual(string name) => name.Contains(".hook_resid_", StringComparison.Ordinal);

    /// <summary>The readings of the armed forward pass and of the backward pass that followed it.</summary>
    public IEnumerable<Diagnostic> Measure(int step)
    {
        model.Hooks = null;
        using var _ = no_grad();
        if (_cache is { } cache) CaptureForward(cache);
        _cache = null;
        var readings = new List<(string Name, int Index, Tensor Value)>(_forward);
        readings.AddRange(GradientReadings());
        _forward.Clear();
        if (readings.Count == 0) return [];
        using var values = stack(readings.Select(r => r.Value.to(ScalarType.Float64).reshape(1)).ToArray()).cpu();
        var numbers = values.data<double>().ToArray();
        return readings.Select((r, i) => new Diagnostic(step, r.Name, r.Index, numbers[i])).ToList();
    }

    void CaptureForward(ActivationCache cache)
    {
        int blocks = model.Blocks.Count;
        var history = new List<Tensor> { cache[HookNames.ResidPre(0)] };
        bool tokens = history[0].shape[1] > 1;
        if (tokens) _forward.Add(("token_cosine", 0, StreamHealth.TokenCosine(history[0])));
        for (int b = 0; b < blocks; b++)
        {
            var (pre, mid, post) = (cache[HookNames.ResidPre(b)], cache[HookNames.ResidMid(b)], cache[HookNames.ResidPost(b)]);
            _forward.Add(("resid_pre_rms", b, Rms(pre)));
            _forward.Add(("resid_mid_rms", b, Rms(mid)));
            _forward.Add(("resid_post_rms", b, Rms(post)));
            if (pre.grad is { } g) _forward.Add(("resid_pre_grad_norm", b, g.norm()));
            if (post.dim() > 3 && post.shape[^2] > 1) _forward.Add(("stream_cosine", b, StreamHealth.StreamCosine(post))); // one stream has no pair
            if (tokens)
            {
                _forward.Add(("token_cosine", 2 * b + 1, StreamHealth.TokenCosine(mid)));
                _forward.Add(("token_cosine", 2 * b + 2, StreamHealth.TokenCosine(post)));
            }
            history.Add(mid);
            history.Add(post);
        }
        for (int k = 0; k + 1 < history.Count; k++)
            _forward.Add(("update_ratio", k, (history[k + 1] - history[k]).norm() / history[k].norm()));
        CaptureMaps();
    }

    IEnumerable<Connection> Connections => model.Blocks.SelectMany(b => new[] { b.AttentionConnection, b.MlpConnection });

    void CaptureMaps()
    {
        var maps = Connections.Select(c => (c as IStreamMixing)?.LastMaps).ToList();
        if (maps.Count == 0 || maps.Any(m => m is null)) return;
        var residuals = new List<Tensor>(maps.Count);
        for (int k = 0; k < maps.Count; k++)
        {
            var (pre, post, res) = maps[k]!;
            int n = (int)res.shape[^1];
            AddEntries("h_pre", k * n, TokenMean(pre, 1));
            AddEntries("h_post", k * n, TokenMean(post, 1));
            AddEntries("h_res", k * n * n, TokenMean(res, 2).flatten());
            _forward.Add(("h_res_row_err", k, (res.sum(-1) - 1).abs().max()));
            _forward.Add(("h_res_col_err", k, (res.sum(-2) - 1).abs().max()));
            _forward.Add(("h_res_entropy", k, StreamHealth.RowEntropy(res)));
            residuals.Add(res);
            var gain = AmaxGain.OfProduct(residuals);
            _forward.Add(("h_res_gain_fwd", k, tensor(gain.Forward)));
            _forward.Add(("h_res_gain_bwd", k, tensor(gain.Backward)));
        }
        int i = 0;
        foreach (var product in StreamHealth.RunningProducts(residuals))
            _forward.Add(("h_res_uniform_dist", i++, StreamHealth.DistanceFromUniform(product)));
    }

    IEnumerable<(string Name, int Index, Tensor Value)> GradientReadings()
    {
        var mixing = Connections.Select(c => (c as IStreamMixing)?.ResidualMixingParameters.ToList() ?? []).ToList();
        if (mixing.All(p => p.Count == 0)) yield break;
        var all = model.parameters().Where(p => p.grad is not null).Select(p => p.grad!.to(ScalarType.Float64).pow(2).sum()).ToArray();
        if (all.Length == 0) yield break;
        var total = stack(all).sum().sqrt();
        for (int k = 0; k < mixing.Count; k++)
        {
            var grads = mixing[k].Where(p => p.grad is not null).Select(p => p.grad!.to(ScalarType.Float64).pow(2).sum()).ToArray();
            if (grads.Length == 0) continue;
            var norm = stack(grads).sum().sqrt();
            yield return ("h_res_grad_norm", k, norm);
            yield return ("h_res_grad_ratio", k, norm / total);
        }
    }

    void AddEntries(string name, int first, Tensor values)
    {
        for (int i = 0; i < values.shape[0]; i++) _forward.Add((name, first + i, values[i]));
    }

    static Tensor TokenMean(Tensor map, int matrixDims) =>
        map.dim() == matrixDims ? map : map.flatten(0, (int)map.dim() - matrixDims - 1).mean([0]);

    static Tensor Rms(Tensor stream) => stream.pow(2).mean().sqrt();
}
