using ResidualLab.Training;
using static TorchSharp.torch;

namespace ResidualLab.Diagnostics;

/// <summary>
/// Per-layer gradient norms: after backward and before clipping, the L2 norm (in fp32) of the gradients
/// of each layer's parameters (a transformer block: attention, MLP and both connections). The training
/// loop reads it at step 0 (the gradient at initialisation), every train.probe_interval steps and on the last step.
/// </summary>
internal sealed class GradientNormProbe(IReadOnlyList<nn.Module> layers)
{
    public const string Name = "grad_norm";

    /// <summary>One reading per layer, indexed from 0 at the input side.</summary>
    public IEnumerable<Diagnostic> Measure(int step)
    {
        using var scope = NewDisposeScope();
        var readings = new List<Diagnostic>(layers.Count);
        for (int i = 0; i < layers.Count; i++)
        {
            var squares = layers[i].parameters().Where(p => p.grad is not null)
                .Select(p => p.grad!.to(ScalarType.Float32).pow(2).sum()).ToArray();
            double norm = squares.Length == 0 ? 0 : Math.Sqrt(stack(squares).sum().item<float>());
            readings.Add(new Diagnostic(step, Name, i, norm));
        }
        return readings;
    }
}
