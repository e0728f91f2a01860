using ResidualLab.Connections;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace ResidualLab.Layers;

/// <summary>
/// The transformer's feed-forward sublayer: c_fc (d -> 4d), GELU, c_proj (4d -> d), dropout. With unit-norm weights
/// (<see cref="ModelNeeds.UnitNormWeights"/>, nGPT) c_fc's output is scaled by s_u sqrt(d), s_u [4d] learned (init 1):
/// its unit-norm rows against a unit-norm input give dot products of order 1/sqrt(d), which the scale brings back to
/// the GELU's non-linear range. A scheme that shapes the MLP (<see cref="ModelNeeds.MlpShape"/>) sets its activation
/// (GELU, or scale · max(x, s x): ReLU, TAT's leaky ReLU), its biases and how its matrices start (<see cref="MlpShape"/>).
/// </summary>
internal sealed class Mlp : nn.Module<Tensor, Tensor>, IResidualSublayer
{
    readonly Linear c_fc;
    readonly GELU gelu;
    readonly Linear c_proj;
    readonly Dropout dropout;
    readonly Parameter? hidden_scale;   // s_u [4d], unit-norm weights only
    readonly double sqrtWidth;
    readonly MlpShape shape;

    /// <param name="shape">The scheme's shape of the MLP; null: <see cref="MlpShape.Standard"/>.</param>
    public Mlp(int dModel, double dropout, bool bias, ModelInit init, int block, int sublayers, bool unitNorm = false, MlpShape? shape = null)
        : base(nameof(Mlp))
    {
        this.shape = shape ??= MlpShape.Standard;
        bias = shape.Bias ?? bias;
        if (unitNorm) hidden_scale = nn.Parameter(ones(4 * dModel));
        sqrtWidth = Math.Sqrt(dModel);
        c_fc = nn.Linear(dModel, 4 * dModel, hasBias: bias);
        gelu = nn.GELU();
        c_proj = nn.Linear(4 * dModel, dModel, hasBias: bias);
        this.dropout = nn.Dropout(dropout);
        RegisterComponents();
        switch (shape.Init)
        {
            case MatrixInit.Model:
                Init.Matrix(c_fc, init, block, sublayers, intoStream: false);
                Init.Matrix(c_proj, init, block, sublayers, intoStream: true);
                break;
            case MatrixInit.Normal:
                Init.Normal(c_fc, shape.Std);
                Init.Normal(c_proj, shape.Std);
                break;
            case MatrixInit.ScaledOrthogonal:
                Init.ScaledOrthogonal(c_fc);
                Init.ScaledOrthogonal(c_proj);
                break;
        }
    }

    /// <summary>Runs in the dtype of its weights (bf16 training) and returns its output in <paramref name="x"/>'s dtype.</summary>
    public override Tensor forward(Tensor x)
    {
        var hidden = c_fc.call(x.to(c_fc.weight!.dtype));
        if (hidden_scale is not null) hidden = hidden * (hidden_scale * sqrtWidth);
        return dropout.call(c_proj.call(Activation(hidden))).to(x.dtype);
    }

    Tensor Activation(Tensor hidden) => shape.Activation switch
    {
        MlpActivation.LeakyRelu when shape.OutputScale == 1 => F.leaky_relu(hidden, shape.NegativeSlope),
        MlpActivation.LeakyRelu => F.leaky_relu(hidden, shape.NegativeSlope) * shape.OutputScale,
        _ => gelu.call(hidden),
    };

    /// <summary>The matrices kept at unit norm with unit-norm weights: c_fc's rows (axis 1), c_proj's columns (axis 0).</summary>
    public IEnumerable<(Tensor Weight, int Axis)> UnitNormMatrices() => [(c_fc.weight!, 1), (c_proj.weight!, 0)];

    public void ScaleResidualWeights(double gain)
    {
        using var _ = no_grad();
        c_fc.weight!.mul_(gain);
        c_proj.weight!.mul_(gain);
    }
}
