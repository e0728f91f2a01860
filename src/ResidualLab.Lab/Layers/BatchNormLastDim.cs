using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace ResidualLab.Layers;

// Axes: ... any leading axes (batch, pixels), c channels (the last axis).

/// <summary>
/// Batch normalisation (Ioffe and Szegedy 2015, arXiv 1502.03167) over the last dimension: x [..., c]
/// is normalised per channel over every other axis, optionally followed by a ReLU. This is the norm of
/// the vision models, whose activations are channel-last ([b, y, x, c] for convolutions, [b, d] for the
/// MLP), and the one they hand to their connections. PyTorch's defaults: eps 1e-5, momentum 0.1, weight
/// 1, bias 0; the parameters and running statistics carry BatchNorm2d's names. On the CPU it runs
/// <see cref="BatchNormLastDimKernel"/> (float64 sums in a fixed order: the same result at any thread
/// count); elsewhere libtorch's batch norm.
/// </summary>
internal sealed class BatchNormLastDim : nn.Module<Tensor, Tensor>
{
    public const double Eps = 1e-5;

    /// <summary>PyTorch's default weight of a batch's statistics in the running ones.</summary>
    public const double DefaultMomentum = 0.1;

    readonly Parameter weight;
    readonly Parameter bias;
    readonly Tensor running_mean;
    readonly Tensor running_var;
    readonly bool _relu;

    /// <param name="relu">Apply max(y, 0) to the normalised output (one pass instead of two).</param>
    public BatchNormLastDim(long channels, bool relu = false) : base(nameof(BatchNormLastDim))
    {
        weight = nn.Parameter(ones(channels));
        bias = nn.Parameter(zeros(channels));
        running_mean = zeros(channels);
        running_var = ones(channels);
        _relu = relu;
        RegisterComponents();
    }

    /// <summary>The weight of a training batch's statistics in the running ones: r = (1 - m) r + m stat.</summary>
    public double Momentum { get; set; } = DefaultMomentum;

    /// <summary>The scale w (a scheme's residual-weight scaling multiplies it).</summary>
    public Parameter Weight => weight;

    /// <summary>The shift b.</summary>
    public Parameter Bias => bias;

    /// <summary>The running mean, the statistic evaluation normalises with.</summary>
    public Tensor RunningMean => running_mean;

    /// <summary>The running (unbiased) variance, the statistic evaluation normalises with.</summary>
    public Tensor RunningVar => running_var;

    /// <summary>Whether the norm applies a ReLU to its output.</summary>
    public bool Relu => _relu;

    /// <summary>
    /// activation(norm(x)), or activation(x) without a norm; a norm that applies the ReLU itself (<see cref="Relu"/>)
    /// stands for both, so <paramref name="activation"/> must then be ReLU.
    /// </summary>
    public static Tensor ThenActivation(BatchNormLastDim? norm, Func<Tensor, Tensor> activation, Tensor x) =>
        norm is null ? activation(x) : norm.Relu ? norm.call(x) : activation(norm.call(x));

    public override Tensor forward(Tensor x)
    {
        if (BatchNormLastDimKernel.Applies(x, weight))
            return BatchNormLastDimKernel.Run(x, weight, bias, running_mean, running_var, training, Momentum, Eps, _relu);
        long c = x.shape[^1];
        var y = F.batch_norm(x.reshape(-1, c), running_mean, running_var, weight, bias, training, Momentum, Eps).view(x.shape);
        return _relu ? F.relu(y) : y;
    }
}
