using ResidualLab.Models;
using static TorchSharp.torch;

namespace ResidualLab.Diagnostics;

/// <summary>
/// The gradient norm of every weight layer, in forward order, read after <c>backward()</c>: the
/// probe for vanishing gradients (He et al. 2016, sec. 4.1, argue that batch norm keeps the plain
/// nets' backward signal healthy). <see cref="FirstToLast"/> is ||dL/dW_first|| / ||dL/dW_last||,
/// the input layer's over the classifier's.
/// </summary>
internal sealed record GradientNorms(IReadOnlyList<string> Layers, IReadOnlyList<double> Norms)
{
    public double FirstToLast => Norms[0] / Norms[^1];

    /// <summary>Reads the gradients of <paramref name="model"/>'s weight layers (one device sync).</summary>
    public static GradientNorms Read(ImageClassifier model)
    {
        using var scope = NewDisposeScope();
        var layers = model.WeightLayers;
        using var norms = stack(layers.Select(l => l.Weight.grad is { } g ? g.norm() : zeros(1).squeeze()).ToArray()).cpu();
        return new GradientNorms(layers.Select(l => l.Name).ToList(), norms.to_type(ScalarType.Float64).data<double>().ToArray());
    }
}
