using ResidualLab.Connections;
using ResidualLab.Hooks;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace ResidualLab.Models;

/// <summary>One layer with weights (a convolution or a fully connected layer), in forward order.</summary>
internal sealed record WeightLayer(string Name, Parameter Weight);

/// <summary>
/// The vision models' common face: images [b, c, h, w] to class logits [b, classes], and the ordered
/// list of their weight layers (the first is the input layer, the last the classifier), which the
/// gradient-norm probes read.
/// </summary>
internal abstract class ImageClassifier(string name) : nn.Module<Tensor, Tensor>(Loaded(name))
{
    public abstract IReadOnlyList<WeightLayer> WeightLayers { get; }

    public abstract ConnectionScheme Connection { get; }

    /// <summary>Hooks at the residual stacks' hook points (<see cref="ResidualPass"/>), applied by every forward; null: none.</summary>
    public HookSet? Hooks { get; set; }

    public Tensor Loss(Tensor images, Tensor labels) => F.cross_entropy(call(images), labels);

    public long ParameterCount() => parameters().Sum(p => p.numel());

    static string Loaded(string name)
    {
        Native.LabRuntime.EnsureLoaded();
        return name;
    }
}
