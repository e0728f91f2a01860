using ResidualLab.Connections;
using ResidualLab.Hooks;
using ResidualLab.Models;
using static TorchSharp.torch;

namespace ResidualLab.Diagnostics;

// Axes: b batch, t position, s streams, d model width, v vocabulary.

/// <summary>
/// Direct logit attribution (Elhage et al. 2021, "A Mathematical Framework for Transformer Circuits";
/// TransformerLens's decompose_resid + logit_attrs): the final hidden state h = Reduce(stream) split into the
/// embedding's part and each sublayer's output's part along the direct path, and each part's contribution
/// to the correct next token's logit through the final LayerNorm with its scale frozen:
/// DLA_c = W_U[y] . (w * (c - mean(c)) / sigma(h)), sigma(h) = sqrt(var(h) + eps), w the norm's weight.
/// A part's direct path is found by replaying the recorded depth steps (<see cref="Connection.Combine"/>)
/// with that part alone: the sublayer's output written into an empty stream, every later sublayer adding
/// nothing; the embedding's part starts from the expanded embedding. The maps stay as the forward computed
/// them (for HC/mHC: H_post, then H_res of every later sublayer). Where the depth step is linear in
/// (stream, output), as for pre-norm, HC and mHC, the parts sum to h and the attributions plus the norm's
/// bias term W_U[y] . b sum to the logit; <see cref="Attribution.Closure"/> reports what is left (large for
/// post-norm-like schemes, whose depth step normalises, and for DenseFormer, whose depth step reads history).
/// </summary>
internal static class DirectLogitAttribution
{
    /// <summary>The reading's name in the store (index 0 the embedding, then 1 + sublayer).</summary>
    public const string RecordName = "dla";

    /// <summary>Components: "embed", then "{block}.attn" and "{block}.mlp"; the mean over the batch's tokens.</summary>
    public sealed record Attribution(IReadOnlyList<string> Components, IReadOnlyList<double> Values, double Logit, double BiasTerm)
    {
        /// <summary>Logit - bias term - sum of the attributions (0 when the decomposition is exact).</summary>
        public double Closure => Logit - BiasTerm - Values.Sum();
    }

    public static Attribution Compute(Gpt model, Tensor idx, Tensor targets)
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var branches = new List<(Connection Connection, Branch Branch)>();
        var outputs = new List<Tensor>();
        var cache = new ActivationCache();
        var hooks = new HookSet().Cache(cache, n => n == HookNames.ResidPre(0))
            .Add(n => n.EndsWith("hook_attn_out", StringComparison.Ordinal) || n.EndsWith("hook_mlp_out", StringComparison.Ordinal), (_, y) =>
            {
                outputs.Add(y);
                return y;
            });
        var hidden = model.Forward(idx, hooks, branches: branches);      // [b, t, d]
        var logits = model.Head(hidden);                                  // [b, t, v]

        var ln = model.FinalNorm;
        var sigma = (hidden.var(-1, unbiased: false, keepdim: true) + ln.eps).sqrt();   // [b, t, 1]
        var direction = model.Unembedding.index_select(0, targets.flatten()).view([.. targets.shape, -1]).to(hidden.dtype); // [b, t, d]
        if (ln.weight is { } w) direction = direction * w;
        Tensor Attribute(Tensor part) => ((part - part.mean([-1], keepdim: true)) / sigma * direction).sum(-1).mean();

        var parts = new List<Tensor> { Replay(model.Connection, branches, cache[HookNames.ResidPre(0)], from: 0) };
        for (int k = 0; k < branches.Count; k++)
        {
            var (conn, branch) = branches[k];
            var alone = conn.Combine(outputs[k], branch with { Stream = zeros_like(branch.Stream) }, new LayerContext(branches.Count));
            parts.Add(Replay(model.Connection, branches, alone, from: k + 1));
        }
        var names = new List<string> { "embed" };
        for (int k = 0; k < branches.Count; k++) names.Add($"{k / 2}.{(k % 2 == 0 ? "attn" : "mlp")}");
        var values = stack(parts.Select(Attribute).ToArray()).to(ScalarType.Float64).cpu().data<double>().ToArray();
        double logit = logits.gather(-1, targets.unsqueeze(-1)).mean().to(ScalarType.Float64).item<double>();
        double bias = ln.bias is { } b ? (model.Unembedding.index_select(0, targets.flatten()).to(b.dtype) * b).sum(-1).mean().to(ScalarType.Float64).item<double>() : 0;
        return new Attribution(names, values, logit, bias);
    }

    /// <summary>Carries <paramref name="stream"/> through the depth steps of sublayers from..end with no output, then Reduce.</summary>
    static Tensor Replay(ConnectionScheme scheme, List<(Connection Connection, Branch Branch)> branches, Tensor stream, int from)
    {
        for (int k = from; k < branches.Count; k++)
        {
            var (conn, branch) = branches[k];
            stream = conn.Combine(zeros_like(branch.Input), branch with { Stream = stream }, new LayerContext(branches.Count));
        }
        return scheme.Reduce(stream);
    }
}
