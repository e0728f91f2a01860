using TorchSharp.Modules;
using static TorchSharp.torch;

namespace ResidualLab.Models;

/// <summary>
/// Multiply-adds of a model's convolutions and fully connected layers for one input, read from the
/// shapes those layers produce in one forward pass: every output element of a layer costs one
/// multiply-add per weight feeding it, its weight's size over its output channels (c_in / groups x
/// k_h x k_w for a convolution, the input features for a linear layer). Norms, activations, pooling,
/// additions and biases are not counted, as usual for model FLOPs.
/// </summary>
internal static class ModelFlops
{
    /// <summary>Forward multiply-adds for one input of shape <paramref name="inputShape"/> (without the batch axis).</summary>
    public static long ForwardMultiplyAdds(nn.Module<Tensor, Tensor> model, params long[] inputShape)
    {
        long total = 0;
        var removeHooks = new List<Action>();
        foreach (var layer in model.modules())
        {
            if (layer is Conv2d conv) removeHooks.Add(conv.register_forward_hook((_, _, output) => Count(output, conv.weight!)).remove);
            else if (layer is Linear linear) removeHooks.Add(linear.register_forward_hook((_, _, output) => Count(output, linear.weight!)).remove);
        }

        Tensor Count(Tensor output, Tensor weight)
        {
            total += output.numel() * (weight.numel() / weight.shape[0]);
            return output;
        }

        bool training = model.training;
        model.eval(); // batch norms leave their running statistics alone
        try
        {
            using var scope = NewDisposeScope();
            using var _ = no_grad();
            var device = model.parameters().First().device;
            model.call(zeros([1, .. inputShape], device: device));
        }
        finally
        {
            foreach (var remove in removeHooks) remove();
            model.train(training);
        }
        return total;
    }
}
