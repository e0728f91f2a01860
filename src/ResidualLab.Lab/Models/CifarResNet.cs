using ResidualLab.Connections;
using ResidualLab.Hooks;
using ResidualLab.Layers;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace ResidualLab.Models;

// Axes: b batch, c channels, y/x image rows/columns. The residual stream is channel-last, [b, y, x, c],
// so that every connection scheme (which works on the last dimension) applies to images as it is.

/// <summary>
/// The CIFAR ResNet-(6n+2) of He et al. 2016, "Deep Residual Learning for Image Recognition"
/// (arXiv 1512.03385), sec. 4.2, and its plain twin: a 3x3 convolution with 16 filters, then three
/// stages of n basic blocks (two 3x3 convolutions each) with 16, 32 and 64 filters on maps of 28, 14
/// and 7 pixels (32, 16, 8 for CIFAR), global average pooling and a fully connected classifier. Batch
/// norm after every convolution, ReLU after the addition, He initialisation, no dropout.
/// <para>
/// Identity-shaped blocks wrap their branch through the connection scheme:
/// <c>h = relu(conn.Combine(F(conn.Prepare(h).Input), ...))</c>. The paper's residual is the scheme
/// <c>residual</c> (x + F(x)); its plain net is <c>none</c> with <c>norm = false</c> (F(x): the batch
/// norms sit inside F as in the paper). Schemes that add norms get a channel batch norm. Each stage is
/// one residual stream (expanded at its start, reduced at its end, with its own layer context), because
/// shapes change between stages.
/// </para>
/// <para>
/// The first block of stages 2 and 3 halves the map with a stride-2 convolution and doubles the
/// channels; it is fixed by the family, not the scheme: the ResNet adds the parameter-free option-A
/// shortcut (subsample by 2, zero-pad the new channels), so ResNet-20/56 have the published
/// 0.27M/0.85M parameters (on 3-channel images); the plain twin has no shortcut there.
/// </para>
/// <para>
/// <see cref="VisionConfig.Layers"/> change the layers, not the structure: without batch norm every convolution
/// has a bias (zero at init) and nothing normalises; the activation is ReLU or TAT's tailored leaky ReLU (one slope
/// for the whole net, solved from its 6n+1 activations); delta-orthogonal init gives the first convolution (which
/// reads the image) scaled-orthogonal weights on its flattened kernel and every other convolution a delta-orthogonal
/// kernel, the classifier scaled-orthogonal weights of gain 1, and zero biases.
/// </para>
/// </summary>
internal sealed class CifarResNet : ImageClassifier
{
    readonly Conv2d conv1;
    readonly BatchNormLastDim? bn1;
    readonly nn.Module<Tensor, Tensor> activation;
    readonly ModuleList<Stage> stages;
    readonly Linear fc;
    readonly List<WeightLayer> _weightLayers = [];
    readonly List<Conv2d> _convolutions = [];

    public VisionConfig Config { get; }
    public override ConnectionScheme Connection { get; }

    /// <summary>Blocks per stage: depth = 6n + 2.</summary>
    public int N => (Config.Depth - 2) / 6;

    public CifarResNet(VisionConfig config, ConnectionScheme connection, bool shortcuts) : base(shortcuts ? "ResNet" : "PlainNet")
    {
        if (DepthProblem(config.Family, config.Depth) is { } problem) throw new ArgumentException(problem);
        Config = config;
        Connection = connection;
        var layers = config.Layers;
        int w = config.Width;
        bool norm = layers.BatchNorm;
        activation = layers.Activation(config.NonlinearLayers);
        Func<Tensor, Tensor> act = activation.call;
        conv1 = Conv3x3(config.InChannels, w, stride: 1, bias: !norm);
        bn1 = norm ? new BatchNormLastDim(w, relu: layers.Relu) : null;
        stages = new ModuleList<Stage>(
            new Stage(w, w, N, connection, shortcuts, norm, layers.Relu, act, () => Hooks, "stages.0."),
            new Stage(w, 2 * w, N, connection, shortcuts, norm, layers.Relu, act, () => Hooks, "stages.1."),
            new Stage(2 * w, 4 * w, N, connection, shortcuts, norm, layers.Relu, act, () => Hooks, "stages.2."));
        fc = nn.Linear(4 * w, config.Classes);
        RegisterComponents();

        _weightLayers.Add(new("conv1", conv1.weight!));
        for (int s = 0; s < stages.Count; s++) _weightLayers.AddRange(stages[s].WeightLayers($"stage{s + 1}"));
        _weightLayers.Add(new("fc", fc.weight!));
        _convolutions.Add(conv1);
        foreach (var stage in stages) _convolutions.AddRange(stage.Convolutions);
        if (layers.Init == VisionInit.DeltaOrthogonal) InitialiseDeltaOrthogonal(layers.Gain);
    }

    public override IReadOnlyList<WeightLayer> WeightLayers => _weightLayers;

    /// <summary>Why <paramref name="depth"/> is not 6n+2 with n &gt;= 1, or null.</summary>
    public static string? DepthProblem(string name, int depth) => depth < 8 || (depth - 2) % 6 != 0
        ? $"a {name} net's depth is 6n+2 with n >= 1 (8, 14, 20, 32, 44, 56, 110), got {depth}"
        : null;

    /// <summary>Every convolution in forward order: conv1, then each stage's (a block's two in turn); 6n+1 in all.</summary>
    public IReadOnlyList<Conv2d> Convolutions => _convolutions;

    /// <summary>The fully connected classifier.</summary>
    public Linear Classifier => fc;

    /// <summary>Images [b, c, y, x] to logits [b, classes].</summary>
    public override Tensor forward(Tensor images) => fc.call(Features(images).mean([1, 2])); // global average pool: [b, 4w]

    /// <summary>Images [b, c, y, x] to the last stage's output [b, y/4, x/4, 4w]: what is pooled for the classifier.</summary>
    public Tensor Features(Tensor images)
    {
        var x = conv1.call(images).permute(0, 2, 3, 1).contiguous();   // [b, y, x, c], channel-last in memory
        var h = BatchNormLastDim.ThenActivation(bn1, activation.call, x);
        foreach (var stage in stages) h = stage.call(h);
        return h;
    }

    /// <summary>
    /// A convolution of channel-last activations, [b, y, x, c_in] to [b, y', x', c_out]: the activations go in as
    /// [b, c, y, x] with channel-last strides, so libtorch keeps them channel-last (oneDNN's NHWC kernels, no reorder
    /// of the activations; the layout <see cref="Native.OneDnnProbe"/> checks) and the output permutes back to a
    /// contiguous [b, y', x', c_out]. Activations in channel-first memory would take oneDNN's blocked channel-first
    /// kernels, which pad channel counts below a vector register and gave wrong input gradients on AMD family 26.
    /// </summary>
    internal static Tensor Convolve(Conv2d conv, Tensor h) => conv.call(h.permute(0, 3, 1, 2)).permute(0, 2, 3, 1);

    /// <summary>See the class summary: the image-reading convolution non-delta, the others delta, the classifier gain 1, biases zero.</summary>
    void InitialiseDeltaOrthogonal(double gain)
    {
        DeltaOrthogonal.Conv(conv1.weight!, gain, delta: false);
        foreach (var conv in _convolutions.Skip(1)) DeltaOrthogonal.Conv(conv.weight!, gain);
        DeltaOrthogonal.Linear(fc.weight!, 1.0);
        using var _ = no_grad();
        foreach (var bias in _convolutions.Select(c => c.bias).Append(fc.bias).OfType<Tensor>()) bias.zero_();
    }

    /// <summary>A 3x3 "same" convolution, He-normal (fan in, ReLU gain); with a bias (zero) when no batch norm follows it.</summary>
    internal static Conv2d Conv3x3(long inChannels, long outChannels, long stride, bool bias = false)
    {
        var conv = nn.Conv2d(inChannels, outChannels, 3, stride: stride, padding: 1, bias: bias);
        using var _ = no_grad();
        nn.init.kaiming_normal_(conv.weight!, mode: nn.init.FanInOut.FanIn, nonlinearity: nn.init.NonlinearityType.ReLU);
        conv.bias?.zero_();
        return conv;
    }

    /// <summary>One stage: an optional down-sampling block, then identity-shaped blocks on one residual stream.</summary>
    sealed class Stage : nn.Module<Tensor, Tensor>
    {
        readonly DownsamplingBlock? down;
        readonly ModuleList<ResidualBlock> blocks;
        readonly ConnectionScheme _connection;
        readonly Func<Tensor, Tensor> _activation;
        readonly Func<HookSet?> _hooks;
        readonly string _hookPrefix;

        /// <param name="norm">Batch norm after every convolution (else a bias).</param>
        /// <param name="relu">Whether the activation is ReLU (the batch norm before it applies it in its own pass).</param>
        /// <param name="activation">The model's activation.</param>
        /// <param name="hooks">The model's hooks at the time of the call.</param>
        /// <param name="hookPrefix">Prefix of the stage's hook point names (stages.{s}.).</param>
        public Stage(int inChannels, int channels, int n, ConnectionScheme connection, bool shortcuts, bool norm, bool relu,
            Func<Tensor, Tensor> activation, Func<HookSet?> hooks, string hookPrefix)
            : base(nameof(Stage))
        {
            _connection = connection;
            _activation = activation;
            _hooks = hooks;
            _hookPrefix = hookPrefix;
            down = inChannels == channels ? null : new DownsamplingBlock(inChannels, channels, shortcuts, norm, relu, activation);
            int identityBlocks = down is null ? n : n - 1;
            blocks = new ModuleList<ResidualBlock>(Enumerable.Range(0, identityBlocks)
                .Select(i => new ResidualBlock(channels, norm, relu, activation, connection.Build(
                    new ConnectionSite(channels, i, identityBlocks, () => new BatchNormLastDim(channels))))).ToArray());
            RegisterComponents();
        }

        public IEnumerable<WeightLayer> WeightLayers(string prefix) =>
            (down is null ? [] : down.Branch.WeightLayers($"{prefix}.down"))
            .Concat(blocks.SelectMany((b, i) => b.Branch.WeightLayers($"{prefix}.block{i}")));

        public IEnumerable<Conv2d> Convolutions =>
            (down is null ? [] : down.Branch.Convolutions).Concat(blocks.SelectMany(b => b.Branch.Convolutions));

        public override Tensor forward(Tensor h)
        {
            if (down is not null) h = down.call(h);
            var pass = new ResidualPass(_connection, h, blocks.Count, hooks: _hooks(), hookPrefix: _hookPrefix);
            foreach (var block in blocks) pass.Step(block.Connection, b => block.Branch.call(b.Input), then: _activation);
            return pass.Finish(meanOfStreams: true);
        }
    }

    /// <summary>An identity-shaped basic block, h = relu(conn.Combine(F(conn.Prepare(h)))): relu(h + F(h)) for the residual
    /// scheme, relu(F(h)) for none. The stage's <see cref="ResidualPass"/> runs it.</summary>
    sealed class ResidualBlock : nn.Module
    {
        readonly Connection conn;
        readonly BasicBranch branch;

        public ResidualBlock(int channels, bool norm, bool relu, Func<Tensor, Tensor> activation, Connection connection) : base(nameof(ResidualBlock))
        {
            conn = connection;
            branch = new BasicBranch(channels, channels, stride: 1, norm, relu, activation);
            RegisterComponents();
            conn.InitializeSublayer(branch);
        }

        public Connection Connection => conn;
        public BasicBranch Branch => branch;
    }

    /// <summary>
    /// The first block of stages 2 and 3: stride 2, channels doubled. ResNet: relu(shortcut_A(h) + F(h));
    /// plain: relu(F(h)).
    /// </summary>
    sealed class DownsamplingBlock : nn.Module<Tensor, Tensor>
    {
        readonly BasicBranch branch;
        readonly bool _shortcut;
        readonly int _extraChannels;
        readonly Func<Tensor, Tensor> _activation;

        public DownsamplingBlock(int inChannels, int outChannels, bool shortcut, bool norm, bool relu, Func<Tensor, Tensor> activation) : base(nameof(DownsamplingBlock))
        {
            branch = new BasicBranch(inChannels, outChannels, stride: 2, norm, relu, activation);
            _shortcut = shortcut;
            _extraChannels = outChannels - inChannels;
            _activation = activation;
            RegisterComponents();
        }

        public BasicBranch Branch => branch;

        public override Tensor forward(Tensor h)
        {
            var y = branch.call(h);
            if (!_shortcut) return _activation(y);
            var identity = h[.., TensorIndex.Slice(null, null, 2), TensorIndex.Slice(null, null, 2)]; // [b, y/2, x/2, c]
            return _activation(F.pad(identity, [0, _extraChannels]) + y);                           // zero-padded channels
        }
    }
}

/// <summary>
/// The branch F of a basic block, channel-last in and out: conv3x3 - BN - ReLU - conv3x3 - BN
/// (He et al. 2016, fig. 2 and sec. 4.2); without batch norm conv3x3(+b) - act - conv3x3(+b). The second batch
/// norm's scale (else the second convolution) is what writes into the stream, so a scheme's residual-weight
/// scaling (DeepNorm) multiplies it.
/// </summary>
internal sealed class BasicBranch : nn.Module<Tensor, Tensor>, IResidualSublayer
{
    readonly Conv2d conv1;
    readonly BatchNormLastDim? bn1;
    readonly Conv2d conv2;
    readonly BatchNormLastDim? bn2;
    readonly Func<Tensor, Tensor> _activation;

    /// <param name="relu">Whether <paramref name="activation"/> is ReLU (the first batch norm then applies it in its own pass).</param>
    public BasicBranch(int inChannels, int outChannels, int stride, bool norm, bool relu, Func<Tensor, Tensor> activation) : base(nameof(BasicBranch))
    {
        conv1 = CifarResNet.Conv3x3(inChannels, outChannels, stride, bias: !norm);
        bn1 = norm ? new BatchNormLastDim(outChannels, relu) : null;
        conv2 = CifarResNet.Conv3x3(outChannels, outChannels, 1, bias: !norm);
        bn2 = norm ? new BatchNormLastDim(outChannels) : null;
        _activation = activation;
        RegisterComponents();
    }

    public IEnumerable<WeightLayer> WeightLayers(string prefix) =>
        [new($"{prefix}.conv1", conv1.weight!), new($"{prefix}.conv2", conv2.weight!)];

    public IEnumerable<Conv2d> Convolutions => [conv1, conv2];

    /// <summary>[b, y, x, c_in] to [b, y / stride, x / stride, c_out].</summary>
    public override Tensor forward(Tensor h)
    {
        var x = BatchNormLastDim.ThenActivation(bn1, _activation, CifarResNet.Convolve(conv1, h));
        x = CifarResNet.Convolve(conv2, x);
        return bn2 is null ? x : bn2.call(x);
    }

    public void ScaleResidualWeights(double gain)
    {
        using var _ = no_grad();
        if (bn2 is not null) bn2.Weight.mul_(gain);
        else
        {
            conv2.weight!.mul_(gain);
            conv2.bias!.mul_(gain);
        }
    }
}
