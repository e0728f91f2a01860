using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace ResidualLab.Training;

/// <summary>
/// SGD with momentum, as in PyTorch and as used by He et al. 2016 (momentum 0.9, weight decay 1e-4):
/// buf = momentum * buf + (g + wd * p), p = p - lr * buf, with weight decay only on the parameters
/// marked for it. Every Scalar passed to libtorch is created and disposed here (docs/performance.md, "Memory").
/// </summary>
internal sealed class Sgd : IOptimizer
{
    readonly (Parameter Param, bool Decay)[] _params;
    readonly Tensor?[] _momentum;

    public double Momentum { get; }
    public double WeightDecay { get; }

    public Sgd(IEnumerable<(Parameter Param, bool Decay)> parameters, double momentum, double weightDecay)
    {
        _params = parameters.ToArray();
        _momentum = new Tensor?[_params.Length];
        Momentum = momentum;
        WeightDecay = weightDecay;
    }

    public IEnumerable<Parameter> Parameters => _params.Select(p => p.Param);

    public void ZeroGrad()
    {
        foreach (var (p, _) in _params) p.grad?.zero_();
    }

    /// <summary>SGD updates from each parameter's own gradient.</summary>
    public IReadOnlyList<Tensor> Gradients => _params.Select(p => p.Param.grad).OfType<Tensor>().ToList();

    public void CollectGradients() { }

    public void Update(double lr)
    {
        using var _ = no_grad();
        using var decay = WeightDecay.ToScalar();
        using var momentum = Momentum.ToScalar();
        using var step = (-lr).ToScalar();
        for (int i = 0; i < _params.Length; i++)
        {
            var (p, decays) = _params[i];
            var g = p.grad;
            if (g is null) continue;
            using var d = decays && WeightDecay != 0 ? g.add(p, decay) : g.clone();
            if (_momentum[i] is { } buf) buf.mul_(momentum).add_(d);
            else _momentum[i] = d.clone().DetachFromDisposeScope();
            p.add_(Momentum == 0 ? d : _momentum[i]!, step);
        }
    }

    /// <summary>Writes the momentum buffers (a parameter without one yet has had no gradient).</summary>
    public void Save(BinaryWriter writer)
    {
        foreach (var buf in _momentum)
        {
            writer.Write(buf is not null);
            buf?.Save(writer);
        }
    }

    public void Load(BinaryReader reader)
    {
        for (int i = 0; i < _momentum.Length; i++)
        {
            if (!reader.ReadBoolean()) continue;
            var saved = TensorExtensionMethods.Load(reader);
            if (!saved.shape.SequenceEqual(_params[i].Param.shape))
                throw new InvalidDataException("optimiser state does not match the model's parameters");
            _momentum[i]?.Dispose();
            _momentum[i] = saved.to(_params[i].Param.device).DetachFromDisposeScope();
        }
    }

    public void Dispose()
    {
        foreach (var buf in _momentum) buf?.Dispose();
    }
}
