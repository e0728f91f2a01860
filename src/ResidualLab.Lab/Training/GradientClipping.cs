using TorchSharp;
using static TorchSharp.torch;

namespace ResidualLab.Training;

/// <summary>The global gradient norm and clipping to it, for every optimiser (as torch.nn.utils.clip_grad_norm_).</summary>
internal static class GradientClipping
{
    /// <summary>The L2 norm of all <paramref name="gradients"/> together, in fp32.</summary>
    public static double Norm(IReadOnlyList<Tensor> gradients)
    {
        if (gradients.Count == 0) return 0;
        using var scope = NewDisposeScope();
        var sum = gradients.Select(g => g.to(ScalarType.Float32).square().sum()).Aggregate((a, b) => a + b);
        return sum.sqrt().item<float>();
    }

    /// <summary>
    /// Scales <paramref name="gradients"/> in place so their global norm is at most <paramref name="maxNorm"/>;
    /// returns the norm before. A non-finite norm leaves them as they are (the step is then skipped).
    /// </summary>
    public static double Clip(IReadOnlyList<Tensor> gradients, double maxNorm)
    {
        double norm = Norm(gradients);
        if (norm > maxNorm && double.IsFinite(norm))
        {
            using var scale = (maxNorm / (norm + 1e-6)).ToScalar();
            foreach (var g in gradients) g.mul_(scale);
        }
        return norm;
    }
}
