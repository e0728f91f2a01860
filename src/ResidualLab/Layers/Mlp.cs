using ResidualLab.Connections;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace ResidualLab.Layers;

/// <summary>The transformer's feed-forward sublayer: c_fc (d -> 4d), GELU, c_proj (4d -> d), dropout.</summary>
internal sealed class Mlp : nn.Module<Tensor, Tensor>, IResidualSublayer
{
    readonly Linear c_fc;
    readonly GELU gelu;
    readonly Linear c_proj;
    readonly Dropout dropout;

    public Mlp(int dModel, double dropout, bool bias, ModelInit init, int block, int sublayers) : base(nameof(Mlp))
    {
        c_fc = nn.Linear(dModel, 4 * dModel, hasBias: bias);
        gelu = nn.GELU();
        c_proj = nn.Linear(4 * dModel, dModel, hasBias: bias);
        this.dropout = nn.Dropout(dropout);
        RegisterComponents();
        Init.Matrix(c_fc, init, block, sublayers, intoStream: false);
        Init.Matrix(c_proj, init, block, sublayers, intoStream: true);
    }

    /// <summary>Runs in the dtype of its weights (bf16 training) and returns its output in <paramref name="x"/>'s dtype.</summary>
    public override Tensor forward(Tensor x) => dropout.call(c_proj.call(gelu.call(c_fc.call(x.to(c_fc.weight!.dtype))))).to(x.dtype);

    public void ScaleResidualWeights(double gain)
    {
        using var _ = no_grad();
        c_fc.weight!.mul_(gain);
        c_proj.weight!.mul_(gain);
    }
}
