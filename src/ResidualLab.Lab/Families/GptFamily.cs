using ResidualLab.Config;
using ResidualLab.Connections;
using ResidualLab.Data;
using ResidualLab.Data.Tokenizers;
using ResidualLab.Layers;
using ResidualLab.Models;
using ResidualLab.Training;
using ResidualLab.Training.Tasks;
using static TorchSharp.torch;

namespace ResidualLab.Families;

/// <summary>A GPT run's model and text.</summary>
/// <param name="Shape">The GPT's shape; its vocabulary is set from the corpus when the task builds it.</param>
/// <param name="Data">Where the text comes from and how it splits.</param>
/// <param name="MatchParams">model.match_params: the scheme whose parameter count the width is chosen to match; null: the configured width.</param>
internal sealed record GptSettings(GptConfig Shape, DataSettings Data, ConnectionScheme? MatchParams = null) : ModelSettings
{
    public override ModelFamily Family => GptFamily.Instance;
    public override string Name => GptFamily.Name;
    public override int Depth => Shape.NLayer;
    public override string RunLabel(string connection, long seed) => $"{connection} L{Shape.NLayer} s{seed}";
}

/// <summary>
/// The GPT language model (<see cref="Gpt"/>, nanoGPT's keys) on a text corpus, trained by <see cref="LanguageModelTask"/>.
/// </summary>
internal sealed class GptFamily : ModelFamily
{
    public const string Name = "gpt";

    public static GptFamily Instance { get; } = new();

    GptFamily() { }

    public override IReadOnlyList<string> Names { get; } = [Name];

    public override string DepthKey => "model.n_layer";

    public override IReadOnlyList<ConfigKey> Keys { get; } =
    [
        new("model.n_layer", ConfigType.Int, 6L, "gpt: number of transformer blocks"),
        new("model.d_model", ConfigType.Int, 192L, "gpt: width of the residual stream"),
        new("model.n_head", ConfigType.Int, 6L, "gpt: attention heads (must divide d_model)"),
        new("model.block_size", ConfigType.Int, 128L, "gpt: context length in tokens"),
        new("model.dropout", ConfigType.Float, 0.0, "gpt: dropout probability"),
        new("model.bias", ConfigType.Bool, true, "gpt: biases in Linear and LayerNorm layers"),
        new("model.value_residual", ConfigType.Bool, false, "gpt: value residual (ResFormer): V_l = lambda V_l + (1 - lambda) V_1, learnable lambda"),
        new("model.match_params", ConfigType.String, "", "gpt: equal size: a scheme whose parameter count (same depth, configured width) this run matches within 2% by choosing d_model (head size kept as close as possible); empty: off", InRunIdAtDefault: false),
        new("data.corpus", ConfigType.String, "moby-dick", "gpt: registry corpus, fetched and cached on first use: moby-dick, or gutenberg (18 books, split by book)"),
        new("data.path", ConfigType.String, "", "gpt: a UTF-8 text file to train on instead of data.corpus"),
        new("data.val_fraction", ConfigType.Float, 0.1, "gpt: fraction of the text held out for validation (just before the test split)"),
        new("data.test_fraction", ConfigType.Float, 0.1, "gpt: fraction of the text (its end) held out for test: the reported numbers; selection never reads it"),
        new("data.tokenizer", ConfigType.String, "char", "gpt: char (one token per character), gpt2 (GPT-2's BPE, 50257 tokens) or bpe:N (a byte-level BPE of N tokens learned on the training split)", InRunIdAtDefault: false),
    ];

    public override ModelSettings Read(ConfigValues v, string name, ConnectionScheme connection, TrainSettings train)
    {
        ImageClassifierFamily.RefuseLayerKeys(v, Name);
        int dModel = v.IntIn("model.d_model", 1, 1 << 16);
        int nHead = v.IntIn("model.n_head", 1, 1024);
        if (dModel % nHead != 0)
            throw new ConfigException($"{v.OriginOf("model.n_head")}: model.n_head ({nHead}) must divide model.d_model ({dModel})");
        double dropout = v.FloatIn("model.dropout", 0, 1);
        if (dropout >= 1) throw new ConfigException($"{v.OriginOf("model.dropout")}: 'model.dropout' must be below 1");
        var shape = new GptConfig(
            VocabSize: 0,
            NLayer: v.IntIn("model.n_layer", 1, 1000),
            DModel: dModel,
            NHead: nHead,
            BlockSize: v.IntIn("model.block_size", 1, 1 << 16),
            Dropout: dropout,
            Bias: v.Bool("model.bias"),
            ValueResidual: v.Bool("model.value_residual"),
            Init: InitOf(v));
        if (Gpt.ShapeProblem(shape, connection) is { } problem)
            throw new ConfigException($"{v.OriginOf("model.value_residual")}: {problem}");
        return new GptSettings(shape, DataOf(v), MatchParamsOf(v));
    }

    static ModelInit InitOf(ConfigValues v)
    {
        string name = v.String("model.init");
        return Init.Parse(name) ?? throw new ConfigException(
            $"{v.OriginOf("model.init")}: 'model.init' must be one of {string.Join(", ", Init.Names)} for the gpt, got '{name}'{Suggest.DidYouMean(name, Init.Names)}");
    }

    static DataSettings DataOf(ConfigValues v)
    {
        var data = new DataSettings(v.String("data.corpus"), v.String("data.path"), v.FloatIn("data.val_fraction", 0, 1, minExclusive: true),
            v.String("data.tokenizer"), v.FloatIn("data.test_fraction", 0, 1));
        if (data.ValFraction + data.TestFraction >= 1)
            throw new ConfigException($"{v.OriginOf("data.val_fraction")}: 'data.val_fraction' + 'data.test_fraction' must be below 1 (the rest trains), got {data.ValFraction} + {data.TestFraction}");
        if (data.Path.Length == 0 && !RegistryCorpus.Names.Contains(data.Corpus))
            throw new ConfigException($"{v.OriginOf("data.corpus")}: {RegistryCorpus.UnknownCorpus(data.Corpus).Message}");
        foreach (string fraction in new[] { "data.val_fraction", "data.test_fraction" })
            if (data.Path.Length == 0 && data.Corpus == GutenbergCorpus.Name && !v.Float(fraction).Equals(ConfigSchema.Find(fraction)!.Default))
                throw new ConfigException($"{v.OriginOf(fraction)}: the gutenberg corpus is split by whole books ({fraction} applies to moby-dick and data.path files); remove {fraction}");
        try { TokenizerSpec.Parse(data.Tokenizer); }
        catch (ConfigException ex) { throw new ConfigException($"{v.OriginOf("data.tokenizer")}: {ex.Message}"); }
        return data;
    }

    static ConnectionScheme? MatchParamsOf(ConfigValues v)
    {
        string name = v.String("model.match_params");
        if (name.Length == 0) return null;
        try { return ConnectionCatalog.Create(name); }
        catch (ArgumentException ex) { throw ConfigException.At(v.OriginOf("model.match_params"), ex); }
    }

    public override ITrainingTask CreateTask(RunConfig config, DataCache data, Device device)
    {
        var gpt = (GptSettings)config.Model;
        return new LanguageModelTask(config, gpt, data.Corpus(gpt.Data, gpt.Shape.BlockSize), device);
    }
}
