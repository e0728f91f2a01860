using ResidualLab.Connections;
using ResidualLab.Layers;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace ResidualLab.Models;

// Axes: b batch, d hidden width.

/// <summary>
/// A deep fully connected classifier, the CIFAR ResNet's block structure with linear layers in place
/// of convolutions: a linear input layer (pixels to d) with BN and ReLU, k blocks of two linear layers
/// h = relu(conn.Combine(F(conn.Prepare(h).Input))) with F = linear - BN - ReLU - linear - BN, and a
/// linear classifier: depth = 2k + 2 layers with weights. With the scheme <c>residual</c> it is a
/// residual MLP (He et al. 2016, eq. 1); with <c>none</c> (<c>norm = false</c>) its plain twin.
/// </summary>
internal sealed class DeepMlp : ImageClassifier
{
    readonly Linear input;
    readonly BatchNorm1d bn;
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
        int d = config.Width, k = (config.Depth - 2) / 2;
        input = HeLinear(config.InChannels * config.ImageSize * config.ImageSize, d);
        bn = nn.BatchNorm1d(d);
        blocks = new ModuleList<MlpBlock>(Enumerable.Range(0, k)
            .Select(i => new MlpBlock(d, connection.Build(new ConnectionSite(d, i, k, () => new BatchNormLastDim(d))))).ToArray());
        fc = nn.Linear(d, config.Classes);
        RegisterComponents();

        _weightLayers.Add(new("input", input.weight!));
        for (int i = 0; i < blocks.Count; i++) _weightLayers.AddRange(blocks[i].Branch.WeightLayers($"block{i}"));
        _weightLayers.Add(new("fc", fc.weight!));
    }

    public override IReadOnlyList<WeightLayer> WeightLayers => _weightLayers;

    /// <summary>Why <paramref name="depth"/> is not 2k+2 with k &gt;= 1, or null.</summary>
    public static string? DepthProblem(int depth) => depth < 4 || depth % 2 != 0
        ? $"an mlp's depth is 2k+2 with k >= 1 residual blocks of two layers (4, 6, ..., 64), got {depth}"
        : null;

    /// <summary>Images [b, c, y, x] to logits [b, classes].</summary>
    public override Tensor forward(Tensor images)
    {
        var h = F.relu(bn.call(input.call(images.flatten(1))));   // [b, d]
        var pass = new ResidualPass(Connection, h, blocks.Count, hooks: Hooks);
        foreach (var block in blocks) pass.Step(block.Connection, b => block.Branch.call(b.Input), then: x => F.relu(x));
        return fc.call(pass.Finish(meanOfStreams: true));
    }

    internal static Linear HeLinear(long inFeatures, long outFeatures)
    {
        var linear = nn.Linear(inFeatures, outFeatures, hasBias: false); // a batch norm follows
        using var _ = no_grad();
        nn.init.kaiming_normal_(linear.weight!, mode: nn.init.FanInOut.FanIn, nonlinearity: nn.init.NonlinearityType.ReLU);
        return linear;
    }

    /// <summary>One block, h = relu(conn.Combine(F(conn.Prepare(h)))); the model's <see cref="ResidualPass"/> runs it.</summary>
    sealed class MlpBlock : nn.Module
    {
        readonly Connection conn;
        readonly MlpBranch branch;

        public MlpBlock(int width, Connection connection) : base(nameof(MlpBlock))
        {
            conn = connection;
            branch = new MlpBranch(width);
            RegisterComponents();
            conn.InitializeSublayer(branch);
        }

        public Connection Connection => conn;
        public MlpBranch Branch => branch;
    }
}

/// <summary>The branch of an MLP block, [b, d] to [b, d]: linear - BN - ReLU - linear - BN.</summary>
internal sealed class MlpBranch : nn.Module<Tensor, Tensor>, IResidualSublayer
{
    readonly Linear fc1;
    readonly BatchNorm1d bn1;
    readonly Linear fc2;
    readonly BatchNorm1d bn2;

    public MlpBranch(int width) : base(nameof(MlpBranch))
    {
        fc1 = DeepMlp.HeLinear(width, width);
        bn1 = nn.BatchNorm1d(width);
        fc2 = DeepMlp.HeLinear(width, width);
        bn2 = nn.BatchNorm1d(width);
        RegisterComponents();
    }

    public IEnumerable<WeightLayer> WeightLayers(string prefix) =>
        [new($"{prefix}.fc1", fc1.weight!), new($"{prefix}.fc2", fc2.weight!)];

    public override Tensor forward(Tensor h) => bn2.call(fc2.call(F.relu(bn1.call(fc1.call(h)))));

    public void ScaleResidualWeights(double gain)
    {
        using var _ = no_grad();
        bn2.weight!.mul_(gain);
    }
}
