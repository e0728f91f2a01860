using ResidualLab.Config;
using ResidualLab.Connections;
using ResidualLab.Data;
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
    public override string RunLabel(string connection, long seed) => $"{Model.Family}-{Model.Depth} {connection} s{seed}";
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
        new("model.depth", ConfigType.Int, 20L, "vision models: layers with weights (resnet/plain 6n+2, mlp 2k+2)"),
        new("model.width", ConfigType.Int, 16L, "vision models: channels of the first stage (16 in He et al.); the mlp's hidden width"),
        new("data.images", ConfigType.String, "fashion-mnist", "vision models: image set (fashion-mnist, mnist), fetched and cached on first use, or a folder of the four MNIST-layout IDX files (a path with a '/')"),
        new("data.augment", ConfigType.Bool, false, "vision models: random crop after 4-pixel zero padding"),
        new("data.train_images", ConfigType.Int, 0L, "vision models: train on the first N training images (0: all but the validation images)"),
        new("data.val_images", ConfigType.Int, 5000L, "vision models: the last N images of the published training split, held out for validation (the published test split is the test; 0: none)"),
        new("train.momentum", ConfigType.Float, 0.9, "vision models: SGD momentum"),
    ];

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
        if (v.String("model.init") != (string)ConfigSchema.Find("model.init")!.Default)
            throw new ConfigException($"{v.OriginOf("model.init")}: model.init is for the GPT; '{name}' keeps He et al.'s initialisation");
        if (train.Dtype != TrainDtype.Float32)
            throw new ConfigException($"{v.OriginOf("train.dtype")}: train.dtype = bfloat16 is for the GPT only; '{name}' trains in float32");
        string images = v.String("data.images");
        if (ImageSets.Problem(images) is { } imagesProblem)
            throw new ConfigException($"{v.OriginOf("data.images")}: {imagesProblem}");
        return new VisionSettings(this, new VisionConfig(name, depth, v.IntIn("model.width", 1, 1 << 14), InChannels: 0, ImageSize: 0, Classes: 0),
            images, v.Bool("data.augment"), v.IntIn("data.train_images", 0), v.FloatIn("train.momentum", 0, 0.999999), v.IntIn("data.val_images", 0));
    }

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
}

/// <summary>The deep fully connected classifier of 2k+2 layers (<c>mlp</c>).</summary>
internal sealed class DeepMlpFamily : ImageClassifierFamily
{
    public static DeepMlpFamily Instance { get; } = new();

    DeepMlpFamily() { }

    public override IReadOnlyList<string> Names { get; } = ["mlp"];

    public override string? DepthProblem(string name, int depth) => DeepMlp.DepthProblem(depth);

    public override ImageClassifier Build(VisionConfig config, ConnectionScheme connection) => new DeepMlp(config, connection);
}
