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
/// A part's direct path is found by replaying every recorded depth step (<see cref="Connection.Combine"/>)
/// in a fresh pass with that part alone: the embedding's part starts from the expanded embedding, a
/// sublayer's part from an empty stream with that sublayer's output written at its step, every other
/// sublayer adding nothing. The replay keeps its own <see cref="LayerContext"/> (history of replayed streams,
/// pass state), so depth steps that read the layer history (DenseFormer, MUDD, DCA, Attention Residuals)
/// read the part's own history. The maps a branch recorded stay as the forward computed them (for HC/mHC:
/// H_post, then H_res of every later sublayer). Where the depth step is linear in (stream, output), as for
/// pre-norm, HC and mHC, the parts sum to h and the attributions plus the norm's bias term W_U[y] . b sum to
/// the logit; <see cref="Attribution.Closure"/> reports what is left: large for schemes whose depth step
/// normalises (post-norm, DeepNorm, Admin) or recomputes input-dependent mixing weights from the history
/// (MUDD, DCA, Attention Residuals after training). A scheme whose depth step is not finite on a stream
/// holding one part (nGPT normalises it: Norm(0)) has no such decomposition: a one-line error.
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

        var embedded = cache[HookNames.ResidPre(0)];
        var parts = new List<Tensor> { Replay(model.Connection, branches, outputs, embedded, alone: -1) };
        for (int k = 0; k < branches.Count; k++)
            parts.Add(Replay(model.Connection, branches, outputs, zeros_like(embedded), alone: k));
        var names = new List<string> { "embed" };
        for (int k = 0; k < branches.Count; k++) names.Add($"{k / 2}.{(k % 2 == 0 ? "attn" : "mlp")}");
        var values = stack(parts.Select(Attribute).ToArray()).to(ScalarType.Float64).cpu().data<double>().ToArray();
        if (!values.All(double.IsFinite))
            throw new ConfigException($"--dla: scheme '{model.Connection.Name}' has no direct path for one part alone (its depth step "
                + "is not finite on a stream that holds a single part, e.g. it normalises an empty stream); use --logit-lens or --lesion instead");
        double logit = logits.gather(-1, targets.unsqueeze(-1)).mean().to(ScalarType.Float64).item<double>();
        double bias = ln.bias is { } b ? (model.Unembedding.index_select(0, targets.flatten()).to(b.dtype) * b).sum(-1).mean().to(ScalarType.Float64).item<double>() : 0;
        return new Attribution(names, values, logit, bias);
    }

    /// <summary>Carries <paramref name="start"/> through every depth step, with sublayer <paramref name="alone"/>'s output
    /// written at its step (none: -1) and nothing from the others, then Reduce.</summary>
    static Tensor Replay(ConnectionScheme scheme, List<(Connection Connection, Branch Branch)> branches,
        List<Tensor> outputs, Tensor start, int alone)
    {
        var ctx = new LayerContext(branches.Count);
        ctx.Record(start);
        var stream = start;
        for (int k = 0; k < branches.Count; k++)
        {
            var (conn, branch) = branches[k];
            var output = k == alone ? outputs[k] : zeros_like(outputs[k]);
            stream = conn.Combine(output, branch with { Stream = stream }, ctx);
            ctx.Advance();
            ctx.Record(stream);
        }
        return scheme.Reduce(stream);
    }
}
