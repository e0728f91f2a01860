using ResidualLab.Config;
using ResidualLab.Connections;
using ResidualLab.Data;
using ResidualLab.Layers;
using ResidualLab.Models;
using ResidualLab.Native;
using ResidualLab.Training;
using ResidualLab.Training.Tasks;
using static TorchSharp.torch;

namespace ResidualLab.Families;

/// <summary>A vision run's model, image set and optimiser settings beyond the shared keys.</summary>
/// <param name="Kind">The family that builds the model.</param>
/// <param name="ValImages">The last images of the published training split, held out for validation.</param>
internal sealed record VisionSettings(ImageClassifierFamily Kind, VisionConfig Model, string Images, bool Augment, int TrainImages, double Momentum,
    int ValImages = 5000) : ModelSettings
{
    public override ModelFamily Family => Kind;
    public override string Name => Model.Family;
    public override int Depth => Model.Depth;
    public override string RunLabel(string connection, long seed) => $"{Model.Family}-{Model.Depth} {connection}{Model.Layers.Describe()} s{seed}";
}

/// <summary>
/// The image classifiers (<see cref="ImageClassifier"/>) on an image set, trained with SGD by <see cref="ImageClassificationTask"/>:
/// what their families share (keys, checks, task); each says which models it builds and which depths they take.
/// They provide a scheme nothing beyond Prepare and Combine (no attention, BatchNorm in the branches, a ReLU after each
/// depth step), so schemes that need more are refused.
/// </summary>
internal abstract class ImageClassifierFamily : ModelFamily
{
    public override IReadOnlyList<ConfigKey> Keys { get; } =
    [
        new("model.depth", ConfigType.Int, 20L, "vision models: layers with weights (resnet, plain, repvgg 6n+2; mlp 2k+2)"),
        new("model.width", ConfigType.Int, 16L, "vision models: channels of the first stage (16 in He et al.); the mlp's hidden width"),
        new("data.images", ConfigType.String, "fashion-mnist", "vision models: image set (fashion-mnist, mnist), fetched and cached on first use, or a folder of the four MNIST-layout IDX files (a path with a '/')"),
        new("data.augment", ConfigType.Bool, false, "vision models: random crop after 4-pixel zero padding"),
        new("data.train_images", ConfigType.Int, 0L, "vision models: train on the first N training images (0: all but the validation images)"),
        new("data.val_images", ConfigType.Int, 5000L, "vision models: the last N images of the published training split, held out for validation (the published test split is the test; 0: none)"),
        new("train.momentum", ConfigType.Float, 0.9, "vision models: SGD momentum"),
        .. LayerKeys,
    ];

    /// <summary>The keys of a vision model's layers (<see cref="VisionLayers"/>), new since results existed: out of the run id at their defaults.</summary>
    static IReadOnlyList<ConfigKey> LayerKeys { get; } =
    [
        new("model.activation", ConfigType.String, "relu", "vision models: relu, or tat (a leaky ReLU whose slope is solved from the depth, arXiv 2203.08120; nets without shortcuts, model.batch_norm = false, model.init = delta-orthogonal)", InRunIdAtDefault: false),
        new("model.tat_eta", ConfigType.Float, 0.9, "model.activation = tat: the target C_f(0) of the network's cosine map (0 < eta < 1; the paper's 0.9)", InRunIdAtDefault: false),
        new("model.batch_norm", ConfigType.Bool, true, "vision models: batch norm after every convolution and hidden linear layer (false: a bias, zero at init, and no normalisation)", InRunIdAtDefault: false),
    ];

    /// <summary>The value of <c>model.init</c> for Xiao et al.'s delta-orthogonal convolutions (scaled-orthogonal linear layers).</summary>
    public const string DeltaOrthogonalInit = "delta-orthogonal";

    public override string DepthKey => "model.depth";

    /// <summary>Why <paramref name="depth"/> is not a depth of the model <paramref name="name"/>, or null.</summary>
    public abstract string? DepthProblem(string name, int depth);

    /// <summary>The model <paramref name="config"/> describes (its images' shape filled in), with <paramref name="connection"/>.</summary>
    public abstract ImageClassifier Build(VisionConfig config, ConnectionScheme connection);

    /// <summary>Why the vision models cannot take <paramref name="connection"/>, or null.</summary>
    public static string? SchemeProblem(ConnectionScheme connection) => connection.Needs == ModelNeeds.None ? null
        : $"connection '{connection.Name}' does not apply to the vision models: it needs {ModelNeedsText.Describe(connection.Needs)}; use it with model.name=gpt";

    public override ModelSettings Read(ConfigValues v, string name, ConnectionScheme connection, TrainSettings train)
    {
        int depth = v.IntIn("model.depth", 1, 10000);
        if (DepthProblem(name, depth) is { } problem)
            throw new ConfigException($"{v.OriginOf("model.depth")}: 'model.depth': {problem}");
        if (SchemeProblem(connection) is { } schemeProblem)
            throw new ConfigException($"{v.OriginOf("connection.name")}: {schemeProblem}");
        if (train.Dtype != TrainDtype.Float32)
            throw new ConfigException($"{v.OriginOf("train.dtype")}: train.dtype = bfloat16 is for the GPT only; '{name}' trains in float32");
        string images = v.String("data.images");
        if (ImageSets.Problem(images) is { } imagesProblem)
            throw new ConfigException($"{v.OriginOf("data.images")}: {imagesProblem}");
        var model = new VisionConfig(name, depth, v.IntIn("model.width", 1, 1 << 14), InChannels: 0, ImageSize: 0, Classes: 0) { Layers = LayersOf(v, name) };
        if (LayersProblem(model, connection) is { } layersProblem)
            throw new ConfigException($"{v.OriginOf(layersProblem.Key)}: {layersProblem.Problem}");
        return new VisionSettings(this, model,
            images, v.Bool("data.augment"), v.IntIn("data.train_images", 0), v.FloatIn("train.momentum", 0, 0.999999), v.IntIn("data.val_images", 0));
    }

    /// <summary>model.init, model.batch_norm, model.activation and model.tat_eta, each checked on its own; whether they fit the model is <see cref="LayersProblem"/>'s.</summary>
    static VisionLayers LayersOf(ConfigValues v, string name)
    {
        string init = v.String("model.init");
        var visionInit = init == DeltaOrthogonalInit ? VisionInit.DeltaOrthogonal
            : IsDefault(v, "model.init") ? VisionInit.He
            : throw new ConfigException($"{v.OriginOf("model.init")}: '{name}' takes model.init = {DeltaOrthogonalInit} (or none: He et al.'s initialisation), got '{init}'{Suggest.DidYouMean(init, [DeltaOrthogonalInit])}; gpt2, pytorch and ds-init are the GPT's");
        string activation = v.String("model.activation");
        if (activation is not ("relu" or "tat"))
            throw new ConfigException($"{v.OriginOf("model.activation")}: 'model.activation' must be relu or tat, got '{activation}'{Suggest.DidYouMean(activation, ["relu", "tat"])}");
        double eta = v.Float("model.tat_eta");
        if (!(eta > 0 && eta < 1))
            throw new ConfigException($"{v.OriginOf("model.tat_eta")}: 'model.tat_eta' must be in (0, 1), got {eta}");
        if (activation != "tat" && !IsDefault(v, "model.tat_eta"))
            throw new ConfigException($"{v.OriginOf("model.tat_eta")}: model.tat_eta is TAT's target; it needs model.activation = tat");
        return new VisionLayers(visionInit, v.Bool("model.batch_norm"), activation == "tat" ? eta : null);
    }

    /// <summary>Whether <paramref name="connection"/> leaves the model <paramref name="name"/> without any shortcut.</summary>
    protected abstract bool WithoutShortcuts(string name, ConnectionScheme connection);

    /// <summary>
    /// Why <paramref name="model"/>'s layers do not apply to it with <paramref name="connection"/>, with the config key to blame;
    /// null when they do. Delta-orthogonal init and TAT are derived for nets without shortcuts: an identity added to every
    /// block changes the maps they are built to preserve.
    /// </summary>
    public virtual (string Key, string Problem)? LayersProblem(VisionConfig model, ConnectionScheme connection)
    {
        var l = model.Layers;
        bool plain = WithoutShortcuts(model.Family, connection);
        string got = $"got model.name = {model.Family}, connection.name = {connection.Name}{(connection is NoResidualScheme { Norm: true } ? " (norm = true)" : "")}";
        if (l.Init == VisionInit.DeltaOrthogonal && !plain)
            return ("model.init", $"model.init = delta-orthogonal applies to nets without shortcuts (model.name = plain or mlp with connection.name = none and connection.norm = false): a shortcut adds the identity to every block, so the isometry of orthogonal kernels (Xiao et al. 2018) is not the net's; {got}");
        if (l.TatEta is not { } eta) return null;
        if (!plain)
            return ("model.activation", $"model.activation = tat applies to nets without shortcuts (model.name = plain or mlp with connection.name = none and connection.norm = false): TAT solves the slope from the C map of a plain chain, which a shortcut changes; {got}");
        if (l.BatchNorm)
            return ("model.activation", "model.activation = tat needs model.batch_norm = false: TAT shapes the C map of a net without normalisation layers (the reference implementation refuses batch norm)");
        if (l.Init != VisionInit.DeltaOrthogonal)
            return ("model.activation", "model.activation = tat needs model.init = delta-orthogonal: TAT's maps hold for scaled-orthogonal weights of gain 1, and He's gain sqrt(2) on top of the activation's own scale would double q at every layer");
        var solved = TailoredActivation.ForChain(model.NonlinearLayers, eta);
        return solved.Reachable ? null : ("model.depth", FormattableString.Invariant(
            $"model.activation = tat at depth {model.Depth} ({model.NonlinearLayers} activations) cannot reach C_f(0) = {eta} (model.tat_eta): even ReLU, its most nonlinear choice, gives {solved.C0:0.000}; lower model.tat_eta to at most that, or use a deeper net"));
    }

    /// <summary>
    /// The GPT has no batch norm, ReLU or convolutions: a GPT run that sets a vision model's layer keys, or asks for
    /// delta-orthogonal init, is refused in one line.
    /// </summary>
    public static void RefuseLayerKeys(ConfigValues v, string name)
    {
        if (v.String("model.init") == DeltaOrthogonalInit)
            throw new ConfigException($"{v.OriginOf("model.init")}: model.init = {DeltaOrthogonalInit} is for the vision models' nets without shortcuts (model.name = plain, or mlp with connection.name = none); the {name} takes {string.Join(", ", Init.Names)}");
        foreach (var key in LayerKeys.Where(k => !IsDefault(v, k.Key)))
            throw new ConfigException($"{v.OriginOf(key.Key)}: {key.Key} is for the vision models ({string.Join(", ", ModelFamilies.All.OfType<ImageClassifierFamily>().SelectMany(f => f.Names))}): TAT, ReLU and batch norm are theirs, the {name}'s layers are fixed; remove {key.Key}");
    }

    static bool IsDefault(ConfigValues v, string key) => v.Get(key).Equals(ConfigSchema.Find(key)!.Default);

    public override ITrainingTask CreateTask(RunConfig config, DataCache data, Device device)
    {
        var vision = (VisionSettings)config.Model;
        return new ImageClassificationTask(config, vision, data.Images(vision.Images), device);
    }

    /// <summary>The image-classifier family named <paramref name="name"/>.</summary>
    /// <exception cref="ArgumentException">No such family.</exception>
    public static ImageClassifierFamily Of(string name) => ModelFamilies.Find(name) as ImageClassifierFamily
        ?? throw new ArgumentException($"'{name}' is not a vision model family; they are {string.Join(", ", ModelFamilies.All.OfType<ImageClassifierFamily>().SelectMany(f => f.Names))}");
}

/// <summary>The CIFAR ResNet-(6n+2) of He et al. 2016 (<c>resnet</c>) and its plain twin without shortcuts (<c>plain</c>).</summary>
internal sealed class CifarResNetFamily : ImageClassifierFamily
{
    public static CifarResNetFamily Instance { get; } = new();

    CifarResNetFamily() { }

    public override IReadOnlyList<string> Names { get; } = ["resnet", "plain"];

    public override string? DepthProblem(string name, int depth) => CifarResNet.DepthProblem(name, depth);

    public override ImageClassifier Build(VisionConfig config, ConnectionScheme connection) =>
        new CifarResNet(config, connection, shortcuts: config.Family == "resnet");

    /// <summary>The plain twin with the scheme none adding no norm (the ResNet keeps its option-A shortcuts whatever its scheme).</summary>
    protected override bool WithoutShortcuts(string name, ConnectionScheme connection) => name == "plain" && connection is NoResidualScheme { Norm: false };
}

/// <summary>The deep fully connected classifier of 2k+2 layers (<c>mlp</c>).</summary>
internal sealed class DeepMlpFamily : ImageClassifierFamily
{
    public static DeepMlpFamily Instance { get; } = new();

    DeepMlpFamily() { }

    public override IReadOnlyList<string> Names { get; } = ["mlp"];

    public override string? DepthProblem(string name, int depth) => DeepMlp.DepthProblem(depth);

    public override ImageClassifier Build(VisionConfig config, ConnectionScheme connection) => new DeepMlp(config, connection);

    protected override bool WithoutShortcuts(string name, ConnectionScheme connection) => connection is NoResidualScheme { Norm: false };
}

/// <summary>
/// RepVGG-(6n+2) (<c>repvgg</c>, <see cref="RepVgg"/>): the plain net's twin that trains with 3x3, 1x1 and identity branches and
/// is fused into the plain net for inference. Its branches and their batch norms are the family's, so it takes the scheme
/// none without norm and He et al.'s layers only.
/// </summary>
internal sealed class RepVggFamily : ImageClassifierFamily
{
    public static RepVggFamily Instance { get; } = new();

    RepVggFamily() { }

    public override IReadOnlyList<string> Names { get; } = ["repvgg"];

    public override string? DepthProblem(string name, int depth) => CifarResNet.DepthProblem(name, depth);

    public override ImageClassifier Build(VisionConfig config, ConnectionScheme connection) => new RepVgg(config, connection);

    /// <summary>Trained, it has a residual (the identity branch); fused, none: neither is the plain chain TAT and delta-orthogonal init are derived for.</summary>
    protected override bool WithoutShortcuts(string name, ConnectionScheme connection) => false;

    public override (string Key, string Problem)? LayersProblem(VisionConfig model, ConnectionScheme connection)
    {
        var l = model.Layers;
        if (connection is not NoResidualScheme { Norm: false })
            return ("connection.name", $"repvgg's blocks carry their own branches (3x3, 1x1 and identity, fused into one 3x3 convolution for inference): it takes connection.name = none with connection.norm = false, got {connection.Name}");
        if (l.Init != VisionInit.He)
            return ("model.init", "model.init = delta-orthogonal does not apply to repvgg: its blocks sum three batch-normalised branches, so one orthogonal kernel is not what a block computes; remove model.init");
        if (l.TatEta is not null)
            return ("model.activation", "model.activation = tat does not apply to repvgg: TAT shapes nets without normalisation or branches, and RepVGG trains with both; remove model.activation");
        if (!l.BatchNorm)
            return ("model.batch_norm", "repvgg's branches are batch-normalised by definition (their batch norms fold into the fused kernel); remove model.batch_norm = false");
        return null;
    }
}
