using ResidualLab.Connections;
using ResidualLab.Layers;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace ResidualLab.Models;

// Axes: b batch, c channels, y/x image rows/columns; kernels [c_out, c_in, 3, 3]. Activations are channel-last,
// [b, y, x, c], as in the plain net it fuses into (CifarResNet.Convolve).

/// <summary>
/// RepVGG: a plain stack of 3x3 convolutions at inference that trains with branches. Ding, Zhang, Ma, Han, Ding and
/// Sun, CVPR 2021, "RepVGG: Making VGG-style ConvNets Great Again" (arXiv 2101.03697), sec. 3.2-3.3; reference code
/// DingXiaoH/RepVGG (<c>repvgg.py</c>). A training-time block, for input x with c_in channels, stride s:
/// <code>
/// y = ReLU( BN_3(conv3x3_s(x)) + BN_1(conv1x1_s(x)) + [BN_0(x) if c_in = c_out and s = 1] )
/// </code>
/// Re-parameterised for inference (sec. 3.3) from the batch norms' running statistics: each branch "conv W, then BN(mu,
/// sigma^2, gamma, beta, eps)" is the convolution t W with bias beta - mu t, t = gamma / sqrt(sigma^2 + eps); the 1x1
/// kernel is zero-padded to 3x3 (its tap at the centre), the identity is the 3x3 kernel with 1 at [i, i, 1, 1], and the
/// block becomes ReLU(conv3x3(x; K3 + K1 + K0) + b3 + b1 + b0): one convolution with a bias. The residual exists only
/// while training.
/// <para>
/// The paper's nets are ImageNet nets (five stride-2 stages); neither it nor its code defines a CIFAR RepVGG. This is
/// RepVGG-(6n+2), the twin of the lab's plain-(6n+2): one RepVGG block per 3x3 convolution of the plain net, the same
/// widths (w, 2w, 4w), strides and head: a stem block c_in to w, 2n blocks at w, then per stage a stride-2 block that
/// doubles the channels (no identity branch) and 2n - 1 blocks, global average pooling and a linear classifier. Fused,
/// it is exactly <see cref="CifarResNet"/>'s plain net without batch norm (<see cref="Fuse"/>), so the comparison with
/// the plain net trained directly isolates the training-time parameterisation.
/// </para>
/// <para>
/// Defaults and open choices, named: convolutions He-normal (fan in), batch norms gamma = 1, beta = 0 (the official
/// repository's PyTorch defaults; batch norm makes the forward pass independent of the convolutions' scale); weight
/// decay as the lab's plain net (kernels, not batch norms); no squeeze-excitation; the folding is computed in float64
/// and cast to the model's type.
/// </para>
/// </summary>
internal sealed class RepVgg : ImageClassifier
{
    readonly ModuleList<RepVggBlock> blocks;
    readonly Linear fc;
    readonly List<WeightLayer> _weightLayers = [];

    public VisionConfig Config { get; }
    public override ConnectionScheme Connection { get; }

    /// <summary>Blocks per stage of the plain twin: depth = 6n + 2, 6n + 1 RepVGG blocks.</summary>
    public int N => (Config.Depth - 2) / 6;

    public RepVgg(VisionConfig config, ConnectionScheme connection) : base(nameof(RepVgg))
    {
        if (CifarResNet.DepthProblem(config.Family, config.Depth) is { } problem) throw new ArgumentException(problem);
        Config = config;
        Connection = connection;
        int w = config.Width;
        var layout = new List<(int In, int Out, int Stride)> { (config.InChannels, w, 1) };
        foreach (var (cIn, cOut) in new[] { (w, w), (w, 2 * w), (2 * w, 4 * w) })
            for (int i = 0; i < 2 * N; i++)
                layout.Add(i == 0 ? (cIn, cOut, cIn == cOut ? 1 : 2) : (cOut, cOut, 1));
        blocks = new ModuleList<RepVggBlock>(layout.Select(l => new RepVggBlock(l.In, l.Out, l.Stride)).ToArray());
        fc = nn.Linear(4 * w, config.Classes);
        RegisterComponents();

        for (int i = 0; i < blocks.Count; i++) _weightLayers.Add(new(i == 0 ? "conv1" : $"block{i}.conv3x3", blocks[i].Kernel3x3));
        _weightLayers.Add(new("fc", fc.weight!));
    }

    /// <summary>The blocks' 3x3 kernels (what the fused net's layers start from), then the classifier.</summary>
    public override IReadOnlyList<WeightLayer> WeightLayers => _weightLayers;

    public IReadOnlyList<RepVggBlock> Blocks => [.. blocks];

    /// <summary>Images [b, c, y, x] to logits [b, classes].</summary>
    public override Tensor forward(Tensor images)
    {
        var h = images.permute(0, 2, 3, 1).contiguous();                    // [b, y, x, c], channel-last in memory
        foreach (var block in blocks) h = block.call(h);
        return fc.call(h.mean([1, 2]));                                      // global average pool: [b, 4w]
    }

    /// <summary>
    /// The inference-time net: the plain (6n+2) net without batch norm, each convolution holding its block's equivalent
    /// kernel and bias, and this classifier's weights; in evaluation mode, on this model's device and type. It computes
    /// what this model computes in evaluation mode (running statistics), not in training mode (batch statistics).
    /// </summary>
    public CifarResNet Fuse()
    {
        var plain = new CifarResNet(Config with { Family = "plain", Layers = new VisionLayers(BatchNorm: false) }, new NoResidualScheme(Norm: false), shortcuts: false);
        var weight = fc.weight!;
        plain.to(weight.dtype).to(weight.device);
        using var _ = no_grad();
        for (int i = 0; i < blocks.Count; i++)
        {
            var (kernel, bias) = blocks[i].EquivalentKernelBias();
            var conv = plain.Convolutions[i];
            conv.weight!.copy_(kernel);
            conv.bias!.copy_(bias);
            kernel.Dispose();
            bias.Dispose();
        }
        plain.Classifier.weight!.copy_(weight);
        plain.Classifier.bias!.copy_(fc.bias!);
        plain.eval();
        return plain;
    }
}

/// <summary>One RepVGG block (see <see cref="RepVgg"/>): [b, y, x, c_in] to [b, y / s, x / s, c_out].</summary>
internal sealed class RepVggBlock : nn.Module<Tensor, Tensor>
{
    readonly Conv2d conv3;
    readonly BatchNormLastDim bn3;
    readonly Conv2d conv1;
    readonly BatchNormLastDim bn1;
    readonly BatchNormLastDim? bnIdentity;
    readonly int _stride;

    public RepVggBlock(int inChannels, int outChannels, int stride) : base(nameof(RepVggBlock))
    {
        _stride = stride;
        conv3 = CifarResNet.Conv3x3(inChannels, outChannels, stride);
        bn3 = new BatchNormLastDim(outChannels);
        conv1 = nn.Conv2d(inChannels, outChannels, 1, stride: stride, bias: false);
        using (no_grad()) nn.init.kaiming_normal_(conv1.weight!, mode: nn.init.FanInOut.FanIn, nonlinearity: nn.init.NonlinearityType.ReLU);
        bn1 = new BatchNormLastDim(outChannels);
        bnIdentity = inChannels == outChannels && stride == 1 ? new BatchNormLastDim(inChannels) : null;
        RegisterComponents();
    }

    public Parameter Kernel3x3 => conv3.weight!;

    /// <summary>Whether the block has the identity branch (c_in = c_out, stride 1).</summary>
    public bool HasIdentity => bnIdentity is not null;

    public override Tensor forward(Tensor x)
    {
        var y = bn3.call(CifarResNet.Convolve(conv3, x)) + bn1.call(Pointwise(x));
        if (bnIdentity is not null) y = y + bnIdentity.call(x);
        return F.relu(y);
    }

    /// <summary>
    /// The 1x1 convolution of channel-last activations [b, y, x, c_in] at the block's stride: every s-th pixel's channels
    /// times the kernel [c_out, c_in], a matrix multiply. The same map as libtorch's 1x1 convolution, whose oneDNN kernels
    /// on channel-last input corrupted the heap on an AMD EPYC of family 26 (4 channels at stride 2: the process aborted
    /// in free()); a matrix multiply has no oneDNN convolution to go wrong.
    /// </summary>
    Tensor Pointwise(Tensor x)
    {
        var sampled = _stride == 1 ? x : x[.., TensorIndex.Slice(null, null, _stride), TensorIndex.Slice(null, null, _stride)];
        return F.linear(sampled, conv1.weight!.flatten(1));                 // [b, y / s, x / s, c_out]
    }

    /// <summary>
    /// The kernel [c_out, c_in, 3, 3] and bias [c_out] of the one convolution that computes the block's sum of branches
    /// in evaluation mode: (K3 + pad(K1) + K0, b3 + b1 + b0), folded in float64 and returned in the kernel's type.
    /// </summary>
    public (Tensor Kernel, Tensor Bias) EquivalentKernelBias()
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var dtype = conv3.weight!.dtype;
        var (k3, b3) = Fold(conv3.weight!, bn3);
        var (k1, b1) = Fold(conv1.weight!, bn1);
        var kernel = k3 + F.pad(k1, [1, 1, 1, 1]);                           // the 1x1 tap at the centre of 3x3
        var bias = b3 + b1;
        if (bnIdentity is not null)
        {
            long c = k3.shape[0];
            var identity = zeros([c, c, 3, 3], dtype: ScalarType.Float64, device: k3.device);
            identity[.., .., 1, 1].copy_(eye(c, dtype: ScalarType.Float64, device: k3.device));
            var (k0, b0) = Fold(identity, bnIdentity);
            kernel = kernel + k0;
            bias = bias + b0;
        }
        return (kernel.to(dtype).MoveToOuterDisposeScope(), bias.to(dtype).MoveToOuterDisposeScope());
    }

    /// <summary>conv W then BN in evaluation mode as one convolution: (t W, beta - mu t), t = gamma / sqrt(var + eps); float64.</summary>
    static (Tensor Kernel, Tensor Bias) Fold(Tensor kernel, BatchNormLastDim bn)
    {
        var t = bn.Weight.to(ScalarType.Float64) / (bn.RunningVar.to(ScalarType.Float64) + BatchNormLastDim.Eps).sqrt();
        var k = kernel.to(ScalarType.Float64) * t.reshape(-1, 1, 1, 1);
        var b = bn.Bias.to(ScalarType.Float64) - bn.RunningMean.to(ScalarType.Float64) * t;
        return (k, b);
    }
}
