using System.Runtime.CompilerServices;
using System.Numerics;
using static TorchSharp.torch;

namespace ResidualLab.Connections.Kernels;

// Axes: t tokens (all leading axes flattened), s streams, d width.

/// <summary>
/// <see cref="Streams.Read"/> on CPU float32/float64 tensors as one autograd function: h = sum_s w_s H_s
/// per token, with the hand-written backward dH_s = w_s g, dw_s = H_s . g. One pass over the stream
/// where the tensor operations make an s-times-wider product, reduce it, and differentiate both.
/// </summary>
internal sealed class StreamReadKernel : autograd.MultiTensorFunction<StreamReadKernel>
{
    public override string Name => nameof(StreamReadKernel);

    public static bool Applies(Tensor weights, Tensor stream) => CpuLoops.Takes(stream, weights);

    /// <param name="vars">weights [t, s], stream [t, s, d], with the same leading shape.</param>
    public override List<Tensor> forward(autograd.AutogradContext ctx, params object[] vars)
    {
        var weights = ((Tensor)vars[0]).contiguous();
        var stream = ((Tensor)vars[1]).contiguous();
        ctx.save_for_backward([weights, stream]);
        var result = empty(stream.shape[..^2].Append(stream.shape[^1]).ToArray(), stream.dtype);
        if (stream.dtype == ScalarType.Float64) Forward<double>(weights, stream, result);
        else Forward<float>(weights, stream, result);
        return [result];
    }

    public override List<Tensor> backward(autograd.AutogradContext ctx, List<Tensor> gradOutputs)
    {
        var saved = ctx.get_saved_variables();
        Tensor weights = saved[0], stream = saved[1];
        var grad = gradOutputs[0].to(stream.dtype).contiguous();
        Tensor gradWeights = empty_like(weights), gradStream = empty_like(stream);
        if (stream.dtype == ScalarType.Float64) Backward<double>(weights, stream, grad, gradWeights, gradStream);
        else Backward<float>(weights, stream, grad, gradWeights, gradStream);
        return [gradWeights, gradStream];
    }

    static unsafe void Forward<T>(Tensor weights, Tensor stream, Tensor result) where T : unmanaged, INumber<T>
    {
        int s = (int)stream.shape[^2], d = (int)stream.shape[^1];
        T* w = CpuLoops.Pointer<T>(weights), H = CpuLoops.Pointer<T>(stream), h = CpuLoops.Pointer<T>(result);
        CpuLoops.ForTokens(weights.numel() / s, [MethodImpl(MethodImplOptions.AggressiveOptimization)] (t) =>
        {
            CpuLoops.Scale(h + t * d, H + t * s * d, w[t * s], d);
            for (int i = 1; i < s; i++) CpuLoops.AddScaled(h + t * d, H + (t * s + i) * d, w[t * s + i], d);
        });
    }

    static unsafe void Backward<T>(Tensor weights, Tensor stream, Tensor grad, Tensor gradWeights, Tensor gradStream) where T : unmanaged, INumber<T>
    {
        int s = (int)stream.shape[^2], d = (int)stream.shape[^1];
        T* w = CpuLoops.Pointer<T>(weights), H = CpuLoops.Pointer<T>(stream), g = CpuLoops.Pointer<T>(grad);
        T* dw = CpuLoops.Pointer<T>(gradWeights), dH = CpuLoops.Pointer<T>(gradStream);
        CpuLoops.ForTokens(weights.numel() / s, [MethodImpl(MethodImplOptions.AggressiveOptimization)] (t) =>
        {
            for (int i = 0; i < s; i++)
            {
                CpuLoops.Scale(dH + (t * s + i) * d, g + t * d, w[t * s + i], d);
                dw[t * s + i] = CpuLoops.Dot(H + (t * s + i) * d, g + t * d, d);
            }
        });
    }
}
