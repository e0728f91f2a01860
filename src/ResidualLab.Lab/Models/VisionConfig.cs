using ResidualLab.Connections;

namespace ResidualLab.Models;

/// <summary>
/// A vision model: its family ("resnet", "plain" or "mlp"), its depth in layers with weights (6n+2 for
/// the CIFAR ResNet and its plain twin, 2k+2 for the MLP), its width (channels of the first stage; the
/// MLP's hidden width) and the images it reads.
/// </summary>
internal sealed record VisionConfig(string Family, int Depth, int Width, int InChannels, int ImageSize, int Classes)
{
    public static readonly IReadOnlyList<string> Families = ["resnet", "plain", "mlp"];

    /// <summary>Why <paramref name="depth"/> is not a valid depth for <paramref name="family"/>, or null.</summary>
    public static string? DepthProblem(string family, int depth) => family switch
    {
        "mlp" when depth < 4 || depth % 2 != 0 => $"an mlp's depth is 2k+2 with k >= 1 residual blocks of two layers (4, 6, ..., 64), got {depth}",
        "resnet" or "plain" when depth < 8 || (depth - 2) % 6 != 0 => $"a {family} net's depth is 6n+2 with n >= 1 (8, 14, 20, 32, 44, 56, 110), got {depth}",
        _ => null,
    };

    /// <summary>Why the vision models cannot take <paramref name="connection"/>, or null: they provide nothing beyond Prepare and
    /// Combine (no attention, BatchNorm in the branches, a ReLU after each depth step).</summary>
    public static string? SchemeProblem(ConnectionScheme connection) => connection.Needs == ModelNeeds.None ? null
        : $"connection '{connection.Name}' does not apply to the vision models: it needs {ModelNeedsText.Describe(connection.Needs)}; use it with model.name=gpt";

    public ImageClassifier Build(ConnectionScheme connection) => SchemeProblem(connection) is { } problem
        ? throw new ArgumentException(problem)
        : Family switch
    {
        "mlp" => new DeepMlp(this, connection),
        "resnet" => new CifarResNet(this, connection, shortcuts: true),
        "plain" => new CifarResNet(this, connection, shortcuts: false),
        _ => throw new ArgumentException($"unknown vision model family '{Family}'"),
    };
}
