using System.Security.Cryptography;
using System.Text;
using ResidualLab.Connections;
using ResidualLab.Data;
using ResidualLab.Data.Tokenizers;
using ResidualLab.Layers;
using ResidualLab.Models;
using ResidualLab.Native;

namespace ResidualLab.Config;

/// <summary>A vision run's model, image set and optimiser settings beyond the shared keys.</summary>
/// <param name="ValImages">The last images of the published training split, held out for validation.</param>
internal sealed record VisionSettings(VisionConfig Model, string Images, bool Augment, int TrainImages, double Momentum, int ValImages = 5000);

/// <summary>Where the text comes from and how it splits: train, then validation (selection), then test (reported numbers).</summary>
/// <param name="Tokenizer">data.tokenizer: "char", "gpt2" or "bpe:N".</param>
internal sealed record DataSettings(string Corpus, string Path, double ValFraction, string Tokenizer = "char", double TestFraction = 0);

internal sealed record TrainSettings(
    int BatchSize, int MaxIters, double Lr, double MinLr, int WarmupIters, double WeightDecay,
    double Beta1, double Beta2, double GradClip, int EvalInterval, int EvalBatches, long Seed,
    int ProbeInterval = 0, TrainDtype Dtype = TrainDtype.Float32, DecayGroups Decay = DecayGroups.Matrices);

/// <summary>
/// Which parameters weight decay applies to: the matrices (nanoGPT; not biases, norms or the connections'
/// scalars and mixing matrices), or every parameter (PyTorch's optimisers given model.parameters()).
/// </summary>
internal enum DecayGroups { Matrices, All }

/// <summary>
/// What the GPT trains in: fp32 throughout, or bf16 weights in its matrix multiplies (embeddings,
/// attention, MLP) with fp32 master weights in the optimiser and fp32 norms, residual stream and loss.
/// </summary>
internal enum TrainDtype { Float32, BFloat16 }

/// <summary>
/// Everything that defines a run, checked. Its id is a hash of the canonical config, so the same
/// experiment asked for twice is the same run.
/// </summary>
internal sealed record RunConfig(
    string ModelName,
    GptConfig Model,
    ConnectionScheme Connection,
    DataSettings Data,
    TrainSettings Train,
    string Device,
    int Threads,
    int CheckpointInterval,
    string Canonical,
    string FullText)
{
    public string RunId { get; } = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(Canonical)))[..12];

    /// <summary>model.match_params: the scheme whose parameter count the GPT's width is chosen to match; null: the configured width.</summary>
    public ConnectionScheme? MatchParams { get; init; }

    /// <summary>Set for the vision models (resnet, plain, mlp); null for the GPT.</summary>
    public VisionSettings? Vision { get; init; }

    /// <summary>train.keep_checkpoints: how many of the newest checkpoints a run keeps (older ones are deleted).</summary>
    public int KeepCheckpoints { get; init; } = 2;

    /// <summary>Whether libtorch may use its oneDNN CPU kernels (train.onednn; a kernel choice like the thread count, not in the run id).</summary>
    public bool OneDnn { get; init; } = true;

    /// <summary>Short human label: connection, depth and seed.</summary>
    public string Label => Vision is { } vision
        ? $"{vision.Model.Family}-{vision.Model.Depth} {Connection.Name} s{Train.Seed}"
        : $"{Connection.Name} L{Model.NLayer} s{Train.Seed}";

    public static RunConfig From(ConfigValues v)
    {
        int Int(string key, long min, long max = int.MaxValue)
        {
            long x = v.Int(key);
            if (x < min || x > max)
                throw new ConfigException($"{v.OriginOf(key)}: '{key}' must be in [{min}, {max}], got {x}");
            return (int)x;
        }
        double Float(string key, double min, double max, bool minExclusive = false)
        {
            double x = v.Float(key);
            bool ok = (minExclusive ? x > min : x >= min) && x <= max && double.IsFinite(x);
            if (!ok)
                throw new ConfigException($"{v.OriginOf(key)}: '{key}' must be in {(minExclusive ? "(" : "[")}{min}, {max}], got {x}");
            return x;
        }

        string modelName = v.String("model.name");
        string[] models = ["gpt", .. VisionConfig.Families];
        if (!models.Contains(modelName))
            throw new ConfigException($"{v.OriginOf("model.name")}: unknown model '{modelName}'{Suggest.DidYouMean(modelName, models)}; models: {string.Join(", ", models)}");

        int dModel = Int("model.d_model", 1, 1 << 16);
        int nHead = Int("model.n_head", 1, 1024);
        if (dModel % nHead != 0)
            throw new ConfigException($"{v.OriginOf("model.n_head")}: model.n_head ({nHead}) must divide model.d_model ({dModel})");
        var model = new GptConfig(
            VocabSize: 0,
            NLayer: Int("model.n_layer", 1, 1000),
            DModel: dModel,
            NHead: nHead,
            BlockSize: Int("model.block_size", 1, 1 << 16),
            Dropout: Float("model.dropout", 0, 1, false) is var p && p < 1 ? p
                : throw new ConfigException($"{v.OriginOf("model.dropout")}: 'model.dropout' must be below 1"),
            Bias: v.Bool("model.bias"),
            ValueResidual: v.Bool("model.value_residual"),
            Init: ModelInitOf(v, modelName));

        ConnectionScheme connection;
        try { connection = ConnectionCatalog.Create(v.String("connection.name"), v.SchemeOptions); }
        catch (ArgumentException ex) { throw ConfigException.At(SchemeOrigin(v, ex), ex); }

        var data = new DataSettings(v.String("data.corpus"), v.String("data.path"), Float("data.val_fraction", 0, 1, true), v.String("data.tokenizer"),
            Float("data.test_fraction", 0, 1));
        if (data.ValFraction + data.TestFraction >= 1)
            throw new ConfigException($"{v.OriginOf("data.val_fraction")}: 'data.val_fraction' + 'data.test_fraction' must be below 1 (the rest trains), got {data.ValFraction} + {data.TestFraction}");
        if (data.Path.Length == 0 && !RegistryCorpus.Names.Contains(data.Corpus))
            throw new ConfigException($"{v.OriginOf("data.corpus")}: {RegistryCorpus.UnknownCorpus(data.Corpus).Message}");
        foreach (string fraction in new[] { "data.val_fraction", "data.test_fraction" })
            if (data.Path.Length == 0 && data.Corpus == GutenbergCorpus.Name && !v.Float(fraction).Equals(ConfigSchema.Find(fraction)!.Default))
                throw new ConfigException($"{v.OriginOf(fraction)}: the gutenberg corpus is split by whole books ({fraction} applies to moby-dick and data.path files); remove {fraction}");
        try { TokenizerSpec.Parse(data.Tokenizer); }
        catch (ConfigException ex) { throw new ConfigException($"{v.OriginOf("data.tokenizer")}: {ex.Message}"); }

        int maxIters = Int("train.max_iters", 1);
        var train = new TrainSettings(
            BatchSize: Int("train.batch_size", 1, 1 << 20),
            MaxIters: maxIters,
            Lr: Float("train.lr", 0, 10, minExclusive: true),
            MinLr: Float("train.min_lr", 0, 10),
            WarmupIters: Int("train.warmup_iters", 0),
            WeightDecay: Float("train.weight_decay", 0, 10),
            Beta1: Float("train.beta1", 0, 0.999999),
            Beta2: Float("train.beta2", 0, 0.999999),
            GradClip: Float("train.grad_clip", 0, 1e9),
            EvalInterval: Int("train.eval_interval", 1),
            EvalBatches: Int("train.eval_batches", 1, 100000),
            Seed: v.Int("train.seed"),
            ProbeInterval: Int("train.probe_interval", 0),
            Dtype: Dtype(v, modelName),
            Decay: v.String("train.decay") switch
            {
                "matrices" => DecayGroups.Matrices,
                "all" => DecayGroups.All,
                var other => throw new ConfigException($"{v.OriginOf("train.decay")}: 'train.decay' must be matrices or all, got '{other}'{Suggest.DidYouMean(other, ["matrices", "all"])}"),
            });

        string device = v.String("train.device");
        if (device != "cpu" && device != "cuda" && !device.StartsWith("cuda:", StringComparison.Ordinal))
            throw new ConfigException($"{v.OriginOf("train.device")}: 'train.device' must be cpu or cuda, got '{device}'");

        VisionSettings? vision = null;
        if (modelName != "gpt")
        {
            int depth = Int("model.depth", 1, 10000);
            if (VisionConfig.DepthProblem(modelName, depth) is { } problem)
                throw new ConfigException($"{v.OriginOf("model.depth")}: 'model.depth': {problem}");
            if (VisionConfig.SchemeProblem(connection) is { } schemeProblem)
                throw new ConfigException($"{v.OriginOf("connection.name")}: {schemeProblem}");
            string images = v.String("data.images");
            if (ImageSets.Problem(images) is { } imagesProblem)
                throw new ConfigException($"{v.OriginOf("data.images")}: {imagesProblem}");
            vision = new VisionSettings(
                new VisionConfig(modelName, depth, Int("model.width", 1, 1 << 14), InChannels: 0, ImageSize: 0, Classes: 0),
                images, v.Bool("data.augment"), Int("data.train_images", 0), Float("train.momentum", 0, 0.999999),
                Int("data.val_images", 0));
        }

        return new RunConfig(modelName, model, connection, data, train, device, Int("train.threads", 0, 4096),
            Int("train.checkpoint_interval", 0), v.Canonical(), v.Full()) { KeepCheckpoints = Int("train.keep_checkpoints", 1, 1000), Vision = vision, OneDnn = OneDnnOf(v, modelName), MatchParams = MatchParamsOf(v, modelName) };
    }

    /// <summary>Where the option a scheme complained of was set: connection.KEY when the config gave it, else connection.name.</summary>
    static string SchemeOrigin(ConfigValues v, ArgumentException ex) =>
        ex.ParamName is { } key && v.SchemeOptions.ContainsKey(key) ? v.OriginOf($"connection.{key}") : v.OriginOf("connection.name");

    static ConnectionScheme? MatchParamsOf(ConfigValues v, string modelName)
    {
        string name = v.String("model.match_params");
        if (name.Length == 0) return null;
        if (modelName != "gpt")
            throw new ConfigException($"{v.OriginOf("model.match_params")}: model.match_params is for the GPT; '{modelName}' sets its width with model.width");
        try { return ConnectionCatalog.Create(name); }
        catch (ArgumentException ex) { throw ConfigException.At(v.OriginOf("model.match_params"), ex); }
    }

    /// <summary>
    /// train.onednn: auto leaves oneDNN on, except for the vision models on AMD CPUs of family 26 or later
    /// (Zen 5), the one CPU where their oneDNN convolutions gave non-finite gradients (README, vision: CPU
    /// kernels). It is not off everywhere because libtorch's own convolutions are several times slower:
    /// ResNet-20 at 2 threads on family 25, 1156 against 315 ms/step.
    /// </summary>
    static bool OneDnnOf(ConfigValues v, string modelName) => v.String("train.onednn") switch
    {
        "on" => true,
        "off" => false,
        "auto" => modelName == "gpt" || !OneDnnSuspect(CpuIdentity.Host),
        var other => throw new ConfigException($"{v.OriginOf("train.onednn")}: 'train.onednn' must be on, off or auto, got '{other}'{Suggest.DidYouMean(other, ["on", "off", "auto"])}"),
    };

    /// <summary>Whether the vision models' oneDNN convolutions were seen to fail on this CPU kind.</summary>
    public static bool OneDnnSuspect(CpuIdentity cpu) => cpu.IsAmd && cpu.Family >= 26;

    static ModelInit ModelInitOf(ConfigValues v, string modelName)
    {
        string name = v.String("model.init");
        var init = Init.Parse(name) ?? throw new ConfigException(
            $"{v.OriginOf("model.init")}: 'model.init' must be one of {string.Join(", ", Init.Names)}, got '{name}'{Suggest.DidYouMean(name, Init.Names)}");
        if (init != ModelInit.Gpt2 && modelName != "gpt")
            throw new ConfigException($"{v.OriginOf("model.init")}: model.init is for the GPT; '{modelName}' keeps He et al.'s initialisation");
        return init;
    }

    static TrainDtype Dtype(ConfigValues v, string modelName)
    {
        string name = v.String("train.dtype");
        var dtype = name switch
        {
            "float32" => TrainDtype.Float32,
            "bfloat16" => TrainDtype.BFloat16,
            _ => throw new ConfigException($"{v.OriginOf("train.dtype")}: 'train.dtype' must be float32 or bfloat16, got '{name}'{Suggest.DidYouMean(name, ["float32", "bfloat16"])}"),
        };
        if (dtype == TrainDtype.BFloat16 && modelName != "gpt")
            throw new ConfigException($"{v.OriginOf("train.dtype")}: train.dtype = bfloat16 is for the GPT only; '{modelName}' trains in float32");
        return dtype;
    }
}
