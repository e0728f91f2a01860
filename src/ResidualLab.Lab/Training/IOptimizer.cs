using ResidualLab.Config;
using ResidualLab.Connections;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace ResidualLab.Training;

/// <summary>
/// What the training loop asks of an optimiser (<see cref="AdamW"/>, <see cref="Sgd"/>): clear the
/// gradients, hand over the gradients it updates from (for the norm and clipping, <see cref="GradientClipping"/>),
/// update at a learning rate, and save or restore its state for a checkpoint.
/// </summary>
internal interface IOptimizer : IDisposable
{
    IEnumerable<Parameter> Parameters { get; }

    void ZeroGrad();

    /// <summary>Called after backward: the gradients <see cref="Gradients"/> lists are then complete.</summary>
    void CollectGradients();

    /// <summary>The gradients the update reads, in fp32; scaling them scales the update's input.</summary>
    IReadOnlyList<Tensor> Gradients { get; }

    void Update(double lr);

    /// <summary>Writes the state a bit-identical continuation needs (step count, moments, master weights).</summary>
    void Save(BinaryWriter writer);

    /// <summary>Reads what <see cref="Save"/> wrote; throws InvalidDataException when it does not fit the parameters.</summary>
    void Load(BinaryReader reader);
}

internal static class ParameterGroups
{
    /// <summary>
    /// Every parameter of <paramref name="model"/> with whether weight decay applies (train.decay). For
    /// <see cref="DecayGroups.Matrices"/>, matrices and convolution kernels decay; vectors (biases, norms)
    /// and what a connection marks as its own residual scalars and mixing matrices do not. For
    /// <see cref="DecayGroups.All"/>, every parameter decays.
    /// </summary>
    public static IEnumerable<(Parameter Param, bool Decay)> Of(nn.Module model, DecayGroups decay)
    {
        var noDecay = new HashSet<IntPtr>(model.modules().OfType<Connection>()
            .SelectMany(c => c.NoDecayParameters()).Select(p => p.Handle));
        return model.parameters().Select(p => (p, decay == DecayGroups.All || (p.dim() >= 2 && !noDecay.Contains(p.Handle)))).ToList();
    }

    /// <summary>As <see cref="Of(nn.Module, DecayGroups)"/>, each parameter of <paramref name="blocks"/> with the
    /// learning-rate factor of <paramref name="rule"/>, every other parameter with 1.</summary>
    public static IEnumerable<(Parameter Param, bool Decay, double LrScale)> Of(nn.Module model, DecayGroups decay,
        IEnumerable<nn.Module> blocks, AdamWRule rule)
    {
        var inBlocks = new HashSet<IntPtr>(blocks.SelectMany(b => b.parameters()).Select(p => p.Handle));
        return Of(model, decay).Select(p => (p.Param, p.Decay, inBlocks.Contains(p.Param.Handle) ? rule.HiddenLr : 1.0)).ToList();
    }
}
