using ResidualLab.Families;

namespace ResidualLab.Config;

internal enum ConfigType { Int, Float, Bool, String }

/// <summary>One key of the run configuration: its section.name, type, default and meaning.</summary>
/// <param name="InRunId">Whether the value is part of the run id (false for threads, checkpoints: they do not change the numbers).</param>
/// <param name="InRunIdAtDefault">
/// False for keys added after results existed: at its default the key is left out of the run id, so runs
/// planned before it keep their ids (and their results); set to anything else it is part of the id.
/// </param>
internal sealed record ConfigKey(string Key, ConfigType Type, object Default, string Description, bool InRunId = true, bool InRunIdAtDefault = true);

/// <summary>
/// Every key a run config may hold, with its default. Keys use the field's names (nanoGPT's
/// n_layer, d_model, n_head, block_size); <c>connection.*</c> options are checked by the connection catalog.
/// </summary>
internal static class ConfigSchema
{
    /// <summary>Every key: those all runs share, then each model family's own (<see cref="ModelFamily.Keys"/>).</summary>
    public static IReadOnlyList<ConfigKey> Keys { get; } =
        Shared().Concat(ModelFamilies.All.SelectMany(f => f.Keys)).DistinctBy(k => k.Key).ToList();

    static IEnumerable<ConfigKey> Shared() =>
    [
        new("model.name", ConfigType.String, "gpt", $"model family: {string.Join(", ", ModelFamilies.Names)}"),
        new("model.init", ConfigType.String, "gpt2", "initialisation; the gpt takes gpt2 (N(0, 0.02), projections / sqrt(2L)), pytorch (each module's default), ds-init (depth-scaled, arXiv 1908.11365); the vision nets without shortcuts (plain; mlp with connection none) take delta-orthogonal (arXiv 1806.05393; orthogonal linear layers), else He's", InRunIdAtDefault: false),
        new("connection.name", ConfigType.String, "pre-norm", "connection scheme ('reslab list connections')"),
        new("train.batch_size", ConfigType.Int, 32L, "sequences (or images) per step"),
        new("train.max_iters", ConfigType.Int, 1000L, "optimiser steps"),
        new("train.lr", ConfigType.Float, 1e-3, "peak learning rate"),
        new("train.min_lr", ConfigType.Float, 1e-4, "learning rate at the end of the cosine decay"),
        new("train.warmup_iters", ConfigType.Int, 100L, "linear warmup steps"),
        new("train.weight_decay", ConfigType.Float, 0.1, "weight decay (AdamW, decoupled; SGD: added to the gradient)"),
        new("train.decay", ConfigType.String, "matrices", "what weight decay applies to: matrices (not biases, norms or residual scalars) or all parameters", InRunIdAtDefault: false),
        new("train.beta1", ConfigType.Float, 0.9, "AdamW beta1"),
        new("train.beta2", ConfigType.Float, 0.99, "AdamW beta2"),
        new("train.grad_clip", ConfigType.Float, 1.0, "clip the global gradient norm to this (0: off)"),
        new("train.eval_interval", ConfigType.Int, 100L, "steps between evaluations"),
        new("train.eval_batches", ConfigType.Int, 20L, "batches in the fixed evaluation set"),
        new("train.seed", ConfigType.Int, 1337L, "seed of initialisation, dropout and batch order"),
        new("train.device", ConfigType.String, "cpu", "cpu or cuda"),
        new("train.dtype", ConfigType.String, "float32", "float32, or bfloat16 (GPT only): bf16 matmul weights, fp32 master weights, norms and loss", InRunIdAtDefault: false),
        new("train.threads", ConfigType.Int, 0L, "intra-op threads (0: libtorch's default)", InRunId: false),
        new("train.onednn", ConfigType.String, "auto", "libtorch's oneDNN CPU kernels: on, off, or auto (on where a start-up check finds oneDNN's convolutions sound on this CPU at the run's threads)", InRunId: false),
        new("train.checkpoint_interval", ConfigType.Int, 0L, "steps between resumable checkpoints (0: none)", InRunId: false),
        new("train.keep_checkpoints", ConfigType.Int, 2L, "checkpoints kept (the newest; resume uses the newest that verifies)", InRunId: false),
        new("train.probe_interval", ConfigType.Int, 0L, "steps between per-layer gradient-norm and stream probes, also at init and on the last step (0: off)", InRunId: false),
    ];

    public static ConfigKey? Find(string key) => Keys.FirstOrDefault(k => k.Key == key);

    public static IEnumerable<string> Sections => Keys.Select(k => k.Key.Split('.')[0]).Distinct();

    public static bool IsConnectionOption(string key) =>
        key.StartsWith("connection.", StringComparison.Ordinal) && key != "connection.name";
}
