using ResidualLab.Data;
using ResidualLab.Hooks;
using ResidualLab.Models;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace ResidualLab.Diagnostics;

// Axes: b batch, t position, d model width, v vocabulary.

/// <summary>
/// The tuned lens (Belrose et al. 2023, arXiv 2303.08112): block i's resid_post, reduced to [b, t, d], goes
/// through an affine translator h + A_i h + c_i before the final norm and head. A_i = 0 and c_i = 0 at init,
/// which is the logit lens exactly. The translators are trained (Adam, the model frozen) to minimise
/// KL(final model distribution || lens distribution) on training batches, then scored by val cross-entropy
/// on training's fixed val batches, like the logit lens (<see cref="LayerProbes.LogitLenses"/>).
/// </summary>
internal sealed class TunedLens : IDisposable
{
    public const string Name = "tuned_lens_val_loss";
    public const int DefaultSteps = 250;
    public const double LearningRate = 1e-3;

    readonly Gpt _model;
    readonly List<Parameter> _weights = [];   // A_i [d, d]
    readonly List<Parameter> _biases = [];    // c_i [d]

    public TunedLens(Gpt model)
    {
        _model = model;
        int d = model.Config.DModel;
        var dtype = model.FinalNorm.weight!.dtype;
        for (int i = 0; i < model.Blocks.Count; i++)
        {
            _weights.Add(new Parameter(zeros(d, d, dtype: dtype)));
            _biases.Add(new Parameter(zeros(d, dtype: dtype)));
        }
    }

    /// <summary>Logits of block <paramref name="block"/>'s lens for its reduced resid_post <paramref name="hidden"/> [b, t, d].</summary>
    public Tensor Logits(int block, Tensor hidden) =>
        _model.Head(hidden + hidden.matmul(_weights[block]) + _biases[block]);

    /// <summary>Trains every translator for <paramref name="steps"/> steps on batches of <paramref name="tokens"/>.</summary>
    public void Train(TokenSequence tokens, int batchSize, int steps, ulong seed, Device device)
    {
        _model.eval();
        var batcher = new TokenBatcher(tokens, batchSize, _model.Config.BlockSize, seed);
        using var optimizer = optim.Adam(_weights.Concat(_biases), lr: LearningRate);
        for (int step = 0; step < steps; step++)
        {
            using var scope = NewDisposeScope();
            var (x, _) = batcher.Next(device);
            ActivationCache cache;
            Tensor target;
            using (no_grad())
            {
                Tensor logits;
                (logits, cache) = _model.RunWithCache(x, IsResidPost);
                target = F.log_softmax(logits, -1);
            }
            optimizer.zero_grad();
            var loss = Enumerable.Range(0, _weights.Count)
                .Select(i => (target.exp() * (target - F.log_softmax(Logits(i, Reduced(cache, i)), -1))).sum(-1).mean()) // KL(final || lens) per token
                .Aggregate((a, b) => a + b);
            loss.backward();
            optimizer.step();
        }
    }

    /// <summary>Val cross-entropy of every block's tuned lens over the fixed val batches.</summary>
    public LayerLosses Evaluate(TokenSequence tokens, int batchSize, int batches, Device device)
    {
        _model.eval();
        var batcher = new TokenBatcher(tokens, batchSize, _model.Config.BlockSize, Training.Tasks.LanguageModelTask.EvalSeed);
        var sums = new double[_weights.Count];
        for (int b = 0; b < batches; b++)
        {
            using var scope = NewDisposeScope();
            using var _ = no_grad();
            var (x, y) = batcher.Next(device);
            var (_, cache) = _model.RunWithCache(x, IsResidPost);
            for (int i = 0; i < sums.Length; i++)
            {
                var logits = Logits(i, Reduced(cache, i));
                sums[i] += F.cross_entropy(logits.view(-1, logits.shape[^1]), y.view(-1)).item<float>();
            }
        }
        return new LayerLosses(Name, sums.Select(s => s / batches).ToList());
    }

    Tensor Reduced(ActivationCache cache, int block) => _model.Connection.Reduce(cache[HookNames.ResidPost(block)]);

    static bool IsResidPost(string name) => name.EndsWith("hook_resid_post", StringComparison.Ordinal);

    public void Dispose()
    {
        foreach (var p in _weights.Concat(_biases)) p.Dispose();
    }
}
