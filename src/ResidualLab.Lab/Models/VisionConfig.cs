using ResidualLab.Connections;
using ResidualLab.Families;

namespace ResidualLab.Models;

/// <summary>
/// A vision model: its model name ("resnet", "plain" or "mlp"), its depth in layers with weights (6n+2 for the CIFAR
/// ResNet and its plain twin, 2k+2 for the MLP), its width (channels of the first stage; the MLP's hidden width) and the
/// images it reads.
/// </summary>
internal sealed record VisionConfig(string Family, int Depth, int Width, int InChannels, int ImageSize, int Classes)
{
    /// <summary>The model, built by its family.</summary>
    /// <exception cref="ArgumentException">The family, depth or scheme does not fit.</exception>
    public ImageClassifier Build(ConnectionScheme connection) =>
        ImageClassifierFamily.SchemeProblem(connection) is { } problem
            ? throw new ArgumentException(problem)
            : ImageClassifierFamily.Of(Family).Build(this, connection);
}
