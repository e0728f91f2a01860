using System.Security.Cryptography;
using System.Text;
using ResidualLab.Connections;
using ResidualLab.Families;

namespace ResidualLab.Config;

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
/// train.onednn: libtorch's oneDNN CPU kernels on, off, or chosen on this CPU (<see cref="Native.OneDnnChoice"/>:
/// on where <see cref="Native.OneDnnProbe"/> finds oneDNN's convolutions sound).
/// </summary>
internal enum OneDnnSetting { Auto, On, Off }

/// <summary>
/// What the GPT trains in: fp32 throughout, or bf16 weights in its matrix multiplies (embeddings,
/// attention, MLP) with fp32 master weights in the optimiser and fp32 norms, residual stream and loss.
/// </summary>
internal enum TrainDtype { Float32, BFloat16 }

/// <summary>
/// Everything that defines a run, checked: the model as its family reads it (<see cref="ModelSettings"/>), the connection
/// scheme, the training settings every family shares, and where it runs. Its id is a hash of the canonical config, so the
/// same experiment asked for twice is the same run.
/// </summary>
internal sealed record RunConfig(
    ModelSettings Model,
    ConnectionScheme Connection,
    TrainSettings Train,
    string Device,
    int Threads,
    int CheckpointInterval,
    string Canonical,
    string FullText)
{
    public string RunId { get; } = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(Canonical)))[..12];

    /// <summary>The family of the run's model.</summary>
    public ModelFamily Family => Model.Family;

    /// <summary>The run's <c>model.name</c>.</summary>
    public string ModelName => Model.Name;

    /// <summary>train.keep_checkpoints: how many of the newest checkpoints a run keeps (older ones are deleted).</summary>
    public int KeepCheckpoints { get; init; } = 2;

    /// <summary>Whether libtorch may use its oneDNN CPU kernels (train.onednn; a kernel choice like the thread count, not in the run id).</summary>
    public OneDnnSetting OneDnn { get; init; } = OneDnnSetting.Auto;

    /// <summary>Short human label: model, connection and seed.</summary>
    public string Label => Model.RunLabel(Connection.Name, Train.Seed);

    /// <summary>The model's settings as <typeparamref name="T"/>, for what only one family answers (a GPT's probes, a
    /// classifier's images).</summary>
    /// <exception cref="ConfigException">The run's model is of another family.</exception>
    public T Settings<T>() where T : ModelSettings => Model as T
        ?? throw new ConfigException($"run {RunId} ({Label}) is a '{Model.Name}' run; this needs a model of the {typeof(T).Name.Replace("Settings", "")} family");

    public static RunConfig From(ConfigValues v)
    {
        string modelName = v.String("model.name");
        var family = ModelFamilies.Find(modelName) ?? throw new ConfigException(
            $"{v.OriginOf("model.name")}: unknown model '{modelName}'{Suggest.DidYouMean(modelName, ModelFamilies.Names)}; models: {string.Join(", ", ModelFamilies.Names)}");

        ConnectionScheme connection;
        try { connection = ConnectionCatalog.Create(v.String("connection.name"), v.SchemeOptions); }
        catch (ArgumentException ex) { throw ConfigException.At(SchemeOrigin(v, ex), ex); }

        var train = new TrainSettings(
            BatchSize: v.IntIn("train.batch_size", 1, 1 << 20),
            MaxIters: v.IntIn("train.max_iters", 1),
            Lr: v.FloatIn("train.lr", 0, 10, minExclusive: true),
            MinLr: v.FloatIn("train.min_lr", 0, 10),
            WarmupIters: v.IntIn("train.warmup_iters", 0),
            WeightDecay: v.FloatIn("train.weight_decay", 0, 10),
            Beta1: v.FloatIn("train.beta1", 0, 0.999999),
            Beta2: v.FloatIn("train.beta2", 0, 0.999999),
            GradClip: v.FloatIn("train.grad_clip", 0, 1e9),
            EvalInterval: v.IntIn("train.eval_interval", 1),
            EvalBatches: v.IntIn("train.eval_batches", 1, 100000),
            Seed: v.Int("train.seed"),
            ProbeInterval: v.IntIn("train.probe_interval", 0),
            Dtype: Dtype(v),
            Decay: v.String("train.decay") switch
            {
                "matrices" => DecayGroups.Matrices,
                "all" => DecayGroups.All,
                var other => throw new ConfigException($"{v.OriginOf("train.decay")}: 'train.decay' must be matrices or all, got '{other}'{Suggest.DidYouMean(other, ["matrices", "all"])}"),
            });

        string device = v.String("train.device");
        if (device != "cpu" && device != "cuda" && !device.StartsWith("cuda:", StringComparison.Ordinal))
            throw new ConfigException($"{v.OriginOf("train.device")}: 'train.device' must be cpu or cuda, got '{device}'");

        var model = family.Read(v, modelName, connection, train);
        return new RunConfig(model, connection, train, device, v.IntIn("train.threads", 0, 4096),
            v.IntIn("train.checkpoint_interval", 0), v.Canonical(), v.Full())
        { KeepCheckpoints = v.IntIn("train.keep_checkpoints", 1, 1000), OneDnn = OneDnnOf(v) };
    }

    /// <summary>Where the option a scheme complained of was set: connection.KEY when the config gave it, else connection.name.</summary>
    static string SchemeOrigin(ConfigValues v, ArgumentException ex) =>
        ex.ParamName is { } key && v.SchemeOptions.ContainsKey(key) ? v.OriginOf($"connection.{key}") : v.OriginOf("connection.name");

    static OneDnnSetting OneDnnOf(ConfigValues v) => v.String("train.onednn") switch
    {
        "on" => OneDnnSetting.On,
        "off" => OneDnnSetting.Off,
        "auto" => OneDnnSetting.Auto,
        var other => throw new ConfigException($"{v.OriginOf("train.onednn")}: 'train.onednn' must be on, off or auto, got '{other}'{Suggest.DidYouMean(other, ["on", "off", "auto"])}"),
    };

    static TrainDtype Dtype(ConfigValues v)
    {
        string name = v.String("train.dtype");
        return name switch
        {
            "float32" => TrainDtype.Float32,
            "bfloat16" => TrainDtype.BFloat16,
            _ => throw new ConfigException($"{v.OriginOf("train.dtype")}: 'train.dtype' must be float32 or bfloat16, got '{name}'{Suggest.DidYouMean(name, ["float32", "bfloat16"])}"),
        };
    }
}
