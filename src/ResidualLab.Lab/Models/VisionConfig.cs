using ResidualLab.Connections;
using ResidualLab.Families;
using ResidualLab.Layers;
using static TorchSharp.torch;

namespace ResidualLab.Models;

/// <summary>How a vision model's weights start (<c>model.init</c>).</summary>
internal enum VisionInit
{
    /// <summary>He et al. 2015 (arXiv 1502.01852): N(0, 2 / fan_in) for every convolution and hidden linear layer.</summary>
    He,

    /// <summary>Delta-orthogonal convolutions and scaled-orthogonal linear layers, biases zero (<see cref="DeltaOrthogonal"/>).</summary>
    DeltaOrthogonal,
}

/// <summary>
/// What a vision model's layers are besides its connection: the initialisation, whether batch norm follows every
/// convolution (without it each convolution and hidden linear layer has a bias, initialised to zero), and the
/// activation, ReLU, or TAT's leaky ReLU tailored to the depth for target <see cref="TatEta"/> (null: ReLU).
/// The defaults are He et al.'s nets.
/// </summary>
internal sealed record VisionLayers(VisionInit Init = VisionInit.He, bool BatchNorm = true, double? TatEta = null)
{
    public static readonly VisionLayers Paper = new();

    /// <summary>
    /// The gain of a scaled-orthogonal layer that feeds an activation: sqrt(2) for ReLU, 1 for TAT's leaky ReLU,
    /// whose output scale sqrt(2 / (1 + alpha^2)) is inside the activation.
    /// </summary>
    public double Gain => TatEta is null ? DeltaOrthogonal.ReluGain : 1.0;

    /// <summary>Whether the activation is ReLU (TAT's is a leaky ReLU): a batch norm before it can apply it in its own pass.</summary>
    public bool Relu => TatEta is null;

    /// <summary>What differs from He et al.'s layers, for labels: " delta-orthogonal no-bn tat", or empty.</summary>
    public string Describe() => string.Concat(
        Init == VisionInit.DeltaOrthogonal ? " delta-orthogonal" : "", BatchNorm ? "" : " no-bn",
        TatEta is { } eta ? (eta == TailoredActivation.DefaultEta ? " tat" : FormattableString.Invariant($" tat({eta})")) : "");

    /// <summary>The activation of a net with <paramref name="nonlinearLayers"/> activations on its path (TAT solves its slope from that count).</summary>
    public nn.Module<Tensor, Tensor> Activation(int nonlinearLayers) => TatEta is { } eta
        ? new TatActivation(TailoredActivation.ForChain(nonlinearLayers, eta))
        : nn.ReLU();
}

/// <summary>
/// A vision model: its model name ("resnet", "plain", "mlp" or "repvgg"), its depth in layers with weights (6n+2 for the
/// CIFAR ResNet, its plain twin and RepVGG, 2k+2 for the MLP), its width (channels of the first stage; the MLP's hidden
/// width), the images it reads and its layers (<see cref="Layers"/>).
/// </summary>
internal sealed record VisionConfig(string Family, int Depth, int Width, int InChannels, int ImageSize, int Classes)
{
    /// <summary>Initialisation, batch norm and activation; He et al.'s by default.</summary>
    public VisionLayers Layers { get; init; } = VisionLayers.Paper;

    /// <summary>
    /// Activations on the longest input-to-output path: depth - 1 for every vision model (one after the first layer and
    /// after every hidden layer; the classifier is linear). What TAT counts as the network's depth.
    /// </summary>
    public int NonlinearLayers => Depth - 1;

    /// <summary>The model, built by its family.</summary>
    /// <exception cref="ArgumentException">The family, depth, scheme or layers do not fit.</exception>
    public ImageClassifier Build(ConnectionScheme connection)
    {
        if (ImageClassifierFamily.SchemeProblem(connection) is { } problem) throw new ArgumentException(problem);
        var family = ImageClassifierFamily.Of(Family);
        if (family.LayersProblem(this, connection) is { } layers) throw new ArgumentException(layers.Problem);
        return family.Build(this, connection);
    }
}
