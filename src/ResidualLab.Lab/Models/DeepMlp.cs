using ResidualLab.Connections;
using ResidualLab.Layers;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace ResidualLab.Models;

// Axes: b batch, d hidden width.

/// <summary>
/// A deep fully connected classifier, the CIFAR ResNet's block structure with linear layers in place
/// of convolutions: a linear input layer (pixels to d) with BN and ReLU, k blocks of two linear layers
/// h = relu(conn.Combine(F(conn.Prepare(h).Input))) with F = linear - BN - ReLU - linear - BN, and a
/// linear classifier: depth = 2k + 2 layers with weights. With the scheme <c>residual</c> it is a
/// residual MLP (He et al. 2016, eq. 1); with <c>none</c> (<c>norm = false</c>) its plain twin.
/// <para>
/// <see cref="VisionConfig.Layers"/>: without batch norm the input and hidden linear layers have a bias (zero at
/// init); the activation is ReLU or TAT's tailored leaky ReLU (slope solved from its 2k+1 activations);
/// delta-orthogonal init gives every linear layer scaled-orthogonal weights (gain sqrt(2) before a ReLU, 1 before a
/// tailored leaky ReLU, 1 for the classifier) and zero biases.
/// </para>
/// </summary>
internal sealed class DeepMlp : ImageClassifier
{
    readonly Linear input;
    readonly BatchNormLastDim? bn;
    readonly nn.Module<Tensor, Tensor> activation;
    readonly ModuleList<MlpBlock> blocks;
    readonly Linear fc;
    readonly List<WeightLayer> _weightLayers = [];

    public VisionConfig Config { get; }
    public override ConnectionScheme Connection { get; }

    public DeepMlp(VisionConfig config, ConnectionScheme connection) : base(nameof(DeepMlp))
    {
        if (DepthProblem(config.Depth) is { } problem) throw new ArgumentException(problem);
        Config = config;
        Connection = connection;
        var layers = config.Layers;
        bool norm = layers.BatchNorm;
        int d = config.Width, k = (config.Depth - 2) / 2;
        activation = layers.Activation(config.NonlinearLayers);
        Func<Tensor, Tensor> act = activation.call;
        input = HeLinear(config.InChannels * config.ImageSize * config.ImageSize, d, bias: !norm);
        bn = norm ? new BatchNormLastDim(d, relu: layers.Relu) : null;
        blocks = new ModuleList<MlpBlock>(Enumerable.Range(0, k)
            .Select(i => new MlpBlock(d, norm, layers.Relu, act, connection.Build(new ConnectionSite(d, i, k, () => new BatchNormLastDim(d))))).ToArray());
        fc = nn.Linear(d, config.Classes);
        RegisterComponents();

        _weightLayers.Add(new("input", input.weight!));
        for (int i = 0; i < blocks.Count; i++) _weightLayers.AddRange(blocks[i].Branch.WeightLayers($"block{i}"));
        _weightLayers.Add(new("fc", fc.weight!));
        if (layers.Init == VisionInit.DeltaOrthogonal) InitialiseOrthogonal(layers.Gain);
    }

    public override IReadOnlyList<WeightLayer> WeightLayers => _weightLayers;

    /// <summary>Why <paramref name="depth"/> is not 2k+2 with k &gt;= 1, or null.</summary>
    public static string? DepthProblem(int depth) => depth < 4 || depth % 2 != 0
        ? $"an mlp's depth is 2k+2 with k >= 1 residual blocks of two layers (4, 6, ..., 64), got {depth}"
        : null;

    /// <summary>The input layer, pixels to d.</summary>
    public Linear InputLayer => input;

    /// <summary>Images [b, c, y, x] to logits [b, classes].</summary>
    public override Tensor forward(Tensor images) => fc.call(Features(images));

    /// <summary>Images [b, c, y, x] to the last block's output [b, d]: what the classifier reads.</summary>
    public Tensor Features(Tensor images)
    {
        var x = input.call(images.flatten(1));
        var h = BatchNormLastDim.ThenActivation(bn, activation.call, x);    // [b, d]
        var pass = new ResidualPass(Connection, h, blocks.Count, hooks: Hooks);
        foreach (var block in blocks) pass.Step(block.Connection, b => block.Branch.call(b.Input), then: activation.call);
        return pass.Finish(meanOfStreams: true);
    }

    /// <summary>Scaled-orthogonal weights (the classifier gain 1), zero biases.</summary>
    void InitialiseOrthogonal(double gain)
    {
        var hidden = new[] { input }.Concat(blocks.SelectMany(b => b.Branch.Linears)).ToList();
        foreach (var linear in hidden) DeltaOrthogonal.Linear(linear.weight!, gain);
        DeltaOrthogonal.Linear(fc.weight!, 1.0);
        using var _ = no_grad();
        foreach (var bias in hidden.Append(fc).Select(l => l.bias).OfType<Tensor>()) bias.zero_();
    }

    /// <summary>A linear layer, He-normal (fan in, ReLU gain); with a bias (zero) when no batch norm follows it.</summary>
    internal static Linear HeLinear(long inFeatures, long outFeatures, bool bias = false)
    {
        var linear = nn.Linear(inFeatures, outFeatures, hasBias: bias);
        using var _ = no_grad();
        nn.init.kaiming_normal_(linear.weight!, mode: nn.init.FanInOut.FanIn, nonlinearity: nn.init.NonlinearityType.ReLU);
        linear.bias?.zero_();
        return linear;
    }

    /// <summary>One block, h = relu(conn.Combine(F(conn.Prepare(h)))); the model's <see cref="ResidualPass"/> runs it.</summary>
    sealed class MlpBlock : nn.Module
    {
        readonly Connection conn;
        readonly MlpBranch branch;

        public MlpBlock(int width, bool norm, bool relu, Func<Tensor, Tensor> activation, Connection connection) : base(nameof(MlpBlock))
        {
            conn = connection;
            branch = new MlpBranch(width, norm, relu, activation);
            RegisterComponents();
            conn.InitializeSublayer(branch);
        }

        public Connection Connection => conn;
        public MlpBranch Branch => branch;
    }
}

/// <summary>The branch of an MLP block, [b, d] to [b, d]: linear - BN - ReLU - linear - BN; without batch norm linear(+b) - act - linear(+b).</summary>
internal sealed class MlpBranch : nn.Module<Tensor, Tensor>, IResidualSublayer
{
    readonly Linear fc1;
    readonly BatchNormLastDim? bn1;
    readonly Linear fc2;
    readonly BatchNormLastDim? bn2;
    readonly Func<Tensor, Tensor> _activation;

    /// <param name="relu">Whether <paramref name="activation"/> is ReLU (the first batch norm then applies it in its own pass).</param>
    public MlpBranch(int width, bool norm, bool relu, Func<Tensor, Tensor> activation) : base(nameof(MlpBranch))
    {
        fc1 = DeepMlp.HeLinear(width, width, bias: !norm);
        bn1 = norm ? new BatchNormLastDim(width, relu) : null;
        fc2 = DeepMlp.HeLinear(width, width, bias: !norm);
        bn2 = norm ? new BatchNormLastDim(width) : null;
        _activation = activation;
        RegisterComponents();
    }

    public IEnumerable<WeightLayer> WeightLayers(string prefix) =>
        [new($"{prefix}.fc1", fc1.weight!), new($"{prefix}.fc2", fc2.weight!)];

    public IEnumerable<Linear> Linears => [fc1, fc2];

    public override Tensor forward(Tensor h)
    {
        var x = fc2.call(BatchNormLastDim.ThenActivation(bn1, _activation, fc1.call(h)));
        return bn2 is null ? x : bn2.call(x);
    }

    public void ScaleResidualWeights(double gain)
    {
        using var _ = no_grad();
        if (bn2 is not null) bn2.Weight.mul_(gain);
        else
        {
            fc2.weight!.mul_(gain);
            fc2.bias!.mul_(gain);
        }
    }
}
