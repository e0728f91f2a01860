using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace ResidualLab.Training;

/// <summary>
/// AdamW (Loshchilov and Hutter 2019, arXiv 1711.05101) over flat buffers. The parameters that decay
/// (nanoGPT: matrices) and those that do not (biases, norms, residual scalars and mixing matrices)
/// each live as views into one contiguous buffer, and so do their gradients, so a step is a handful of
/// tensor ops per group rather than a handful per parameter:
///   m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
///   p = p (1 - lr wd) - lr / (1 - b1^t) * m / (sqrt(v / (1 - b2^t)) + eps)
/// A group may carry a factor on the learning rate (a scheme's <see cref="Connections.AdamWRule"/>, CompleteP's
/// depth rule); it scales the group's step and its decoupled weight decay, as a PyTorch param group's lr does.
/// Parameters in bf16 (or fp16) get fp32 master weights: the model computes with a low-precision copy
/// of each group's buffer, <see cref="CollectGradients"/> upcasts its gradients into an fp32 buffer, the
/// norm, clipping and update work in fp32 on the masters, and one flat copy refreshes the model's weights.
/// Every Scalar passed to libtorch is created and disposed here: implicit double-to-Scalar conversions
/// are freed only by finalizers and make native memory grow each step.
/// </summary>
internal sealed class AdamW : IOptimizer
{
    /// <summary>
    /// One flat group of parameters of one dtype. Master, Grad and both moments are fp32; the model's
    /// parameters are views into Weights and their gradients views into WeightGrad, which are Master and
    /// Grad themselves for fp32 parameters and low-precision copies otherwise.
    /// </summary>
    sealed class Group(Tensor weights, Tensor weightGrad, bool decay, double lrScale, Parameter[] members)
    {
        public Tensor Weights { get; } = weights;
        public Tensor WeightGrad { get; } = weightGrad;
        public Tensor Master { get; } = weights.dtype == ScalarType.Float32 ? weights : weights.to(ScalarType.Float32).DetachFromDisposeScope();
        public Tensor Grad { get; } = weights.dtype == ScalarType.Float32 ? weightGrad : zeros_like(weights, dtype: ScalarType.Float32).DetachFromDisposeScope();
        public bool HasMaster => !ReferenceEquals(Master, Weights);
        public Tensor ExpAvg { get; } = zeros_like(weights, dtype: ScalarType.Float32).DetachFromDisposeScope();
        public Tensor ExpAvgSq { get; } = zeros_like(weights, dtype: ScalarType.Float32).DetachFromDisposeScope();
        public bool Decay { get; } = decay;
        public double LrScale { get; } = lrScale;
        public Parameter[] Members { get; } = members;
    }

    readonly Group[] _groups;

    public double Beta1 { get; }
    public double Beta2 { get; }
    public double Eps { get; }
    public double WeightDecay { get; }
    public long Step { get; private set; }

    /// <summary>
    /// Moves the parameters into flat buffers (their values are kept) and gives them flat gradients; one
    /// group per decay setting and dtype. The parameters must be fp32, bf16 or fp16.
    /// </summary>
    /// <summary>AdamW's eps unless a scheme's rule changes it (PyTorch's default).</summary>
    public const double DefaultEps = 1e-8;

    public AdamW(IEnumerable<(Parameter Param, bool Decay)> parameters, double beta1, double beta2, double weightDecay, double eps = DefaultEps)
        : this(parameters.Select(p => (p.Param, p.Decay, 1.0)), beta1, beta2, weightDecay, eps) { }

    /// <summary>As above, each parameter with a factor on the learning rate: one group per decay setting, factor and dtype.</summary>
    public AdamW(IEnumerable<(Parameter Param, bool Decay, double LrScale)> parameters, double beta1, double beta2, double weightDecay, double eps = DefaultEps)
    {
        Beta1 = beta1;
        Beta2 = beta2;
        WeightDecay = weightDecay;
        Eps = eps;
        var all = parameters.ToArray();
        var unsupported = all.FirstOrDefault(p => p.Param.dtype is not (ScalarType.Float32 or ScalarType.BFloat16 or ScalarType.Float16));
        if (unsupported.Param is not null)
            throw new ArgumentException($"AdamW trains fp32, bf16 or fp16 parameters, not {unsupported.Param.dtype}");
        _groups = all.GroupBy(p => (p.Decay, p.LrScale, p.Param.dtype))
            .OrderByDescending(g => g.Key.Decay).ThenBy(g => g.Key.LrScale).ThenBy(g => g.Key.dtype)
            .Select(g => Flatten(g.Select(p => p.Param).ToArray(), g.Key.Decay, g.Key.LrScale))
            .ToArray();
    }

    static Group Flatten(Parameter[] members, bool decay, double lrScale)
    {
        long total = members.Sum(p => p.numel());
        var first = members[0];
        var flat = empty(total, dtype: first.dtype, device: first.device).DetachFromDisposeScope();
        var flatGrad = zeros(total, dtype: first.dtype, device: first.device).DetachFromDisposeScope();
        using var _ = no_grad();
        long offset = 0;
        foreach (var p in members)
        {
            long n = p.numel();
            var view = flat.narrow(0, offset, n).view(p.shape);
            view.copy_(p);
            p.set_(view);
            p.grad = flatGrad.narrow(0, offset, n).view(p.shape);
            offset += n;
        }
        return new Group(flat, flatGrad, decay, lrScale, members);
    }

    public IEnumerable<Parameter> Parameters => _groups.SelectMany(g => g.Members);

    public void ZeroGrad()
    {
        foreach (var g in _groups) g.WeightGrad.zero_();
    }

    /// <summary>Upcasts the gradients of low-precision parameters into the fp32 buffers; call after backward.</summary>
    public void CollectGradients()
    {
        using var _ = no_grad();
        foreach (var g in _groups.Where(g => g.HasMaster)) g.Grad.copy_(g.WeightGrad);
    }

    /// <summary>The fp32 gradients, one flat buffer per group.</summary>
    public IReadOnlyList<Tensor> Gradients => _groups.Select(g => g.Grad).ToList();

    public void Update(double lr)
    {
        Step++;
        double bc1 = 1 - Math.Pow(Beta1, Step);
        double bc2 = 1 - Math.Pow(Beta2, Step);
        using var _ = no_grad();
        using var oneMinusB1 = (1 - Beta1).ToScalar();
        using var oneMinusB2 = (1 - Beta2).ToScalar();
        using var b1 = Beta1.ToScalar();
        using var b2 = Beta2.ToScalar();
        using var eps = Eps.ToScalar();
        using var sqrtBc2 = Math.Sqrt(bc2).ToScalar();
        foreach (var g in _groups)
        {
            double groupLr = lr * g.LrScale;
            using var decay = (1 - groupLr * WeightDecay).ToScalar();
            using var stepSize = (-groupLr / bc1).ToScalar();
            if (g.Decay && WeightDecay != 0) g.Master.mul_(decay);
            g.ExpAvg.mul_(b1).add_(g.Grad, oneMinusB1);
            g.ExpAvgSq.mul_(b2).addcmul_(g.Grad, g.Grad, oneMinusB2);
            using var denom = g.ExpAvgSq.sqrt().div_(sqrtBc2).add_(eps);
            g.Master.addcdiv_(g.ExpAvg, denom, stepSize);
            if (g.HasMaster) g.Weights.copy_(g.Master);
        }
    }

    /// <summary>The fp32 master weights of the low-precision groups, one flat buffer each (none in fp32 training).</summary>
    public IReadOnlyList<Tensor> MasterWeights => _groups.Where(g => g.HasMaster).Select(g => g.Master).ToList();

    /// <summary>Each low-precision parameter with a view of its fp32 master weights, shaped as the parameter.</summary>
    public IEnumerable<(Parameter Param, Tensor Master)> MasterViews()
    {
        foreach (var g in _groups.Where(g => g.HasMaster))
        {
            long offset = 0;
            foreach (var p in g.Members)
            {
                long n = p.numel();
                yield return (p, g.Master.narrow(0, offset, n).view(p.shape));
                offset += n;
            }
        }
    }

    /// <summary>Writes the step, the moments and the fp32 master weights.</summary>
    public void Save(BinaryWriter writer)
    {
        writer.Write(Step);
        foreach (var g in _groups) g.ExpAvg.Save(writer);
        foreach (var g in _groups) g.ExpAvgSq.Save(writer);
        foreach (var g in _groups.Where(g => g.HasMaster)) g.Master.Save(writer);
    }

    /// <summary>Restores the step, the moments and the master weights, and refreshes the model's low-precision weights.</summary>
    public void Load(BinaryReader reader)
    {
        long step = reader.ReadInt64();
        var masters = _groups.Where(g => g.HasMaster).ToArray();
        var moments = _groups.Select(g => g.ExpAvg).Concat(_groups.Select(g => g.ExpAvgSq));
        using var _ = no_grad();
        foreach (var target in moments.Concat(masters.Select(g => g.Master)))
        {
            using var saved = TensorExtensionMethods.Load(reader);
            if (!target.shape.SequenceEqual(saved.shape))
                throw new InvalidDataException("optimiser state does not match the model's parameters");
            target.copy_(saved);
        }
        foreach (var g in masters) g.Weights.copy_(g.Master);
        Step = step;
    }

    public void Dispose()
    {
        foreach (var g in _groups)
        {
            g.ExpAvg.Dispose();
            g.ExpAvgSq.Dispose();
            if (!g.HasMaster) continue;
            g.Master.Dispose();
            g.Grad.Dispose();
        }
    }
}
