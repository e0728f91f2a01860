using System.Numerics;
using System.Runtime.CompilerServices;
using static TorchSharp.torch;

namespace ResidualLab.Connections.Kernels;

// Axes: t tokens (all leading axes flattened), s streams, d width.

/// <summary>
/// <see cref="Streams.Read"/> on CPU float32/float64 tensors as one autograd function: h = sum_s w_s H_s
/// per token, with the hand-written backward dH_s = w_s g, dw_s = H_s . g. The weights are per token [t, s] or one
/// vector [s] for every token (static HC), whose gradient is summed over the tokens here (in float64).
/// One pass over the stream where the tensor operations make an s-times-wider product, reduce it, and differentiate both.
/// It also returns the stream itself for the depth step to read (see <see cref="WidthStep.Stream"/>): the depth step's
/// gradient of the stream comes back through this function and is added in the same pass.
/// </summary>
internal sealed class StreamReadKernel : autograd.MultiTensorFunction<StreamReadKernel>
{
    public override string Name => nameof(StreamReadKernel);

    public static bool Applies(Tensor weights, Tensor stream) => CpuLoops.Takes(stream, weights);

    /// <param name="vars">weights [t, s] or [s], stream [t, s, d], with the same leading shape. Returns the read [t, d] and the stream.</param>
    public override List<Tensor> forward(autograd.AutogradContext ctx, params object[] vars)
    {
        var weights = ((Tensor)vars[0]).contiguous();
        var stream = ((Tensor)vars[1]).contiguous();
        ctx.save_for_backward([weights, stream]);
        ctx.set_materialize_grads(false); // the stream's gradient is absent where no depth step read it
        var result = empty(stream.shape[..^2].Append(stream.shape[^1]).ToArray(), stream.dtype);
        CpuLoops.Dispatch(stream.dtype, new Pass(weights, stream, result, null, null, null, null));
        return [result, stream];
    }

    public override List<Tensor> backward(autograd.AutogradContext ctx, List<Tensor> gradOutputs) => BackwardMemory.Run(gradOutputs, () =>
    {
        var saved = ctx.get_saved_variables();
        Tensor weights = saved[0], stream = saved[1];
        var grad = gradOutputs[0].IsInvalid ? zeros(stream.shape[..^2].Append(stream.shape[^1]).ToArray(), stream.dtype)
            : gradOutputs[0].to(stream.dtype).contiguous();
        Tensor? fromDepthStep = gradOutputs[1].IsInvalid ? null : gradOutputs[1].to(stream.dtype).contiguous();
        Tensor gradWeights = empty_like(weights), gradStream = empty_like(stream);
        CpuLoops.Dispatch(stream.dtype, new Pass(weights, stream, null, grad, fromDepthStep, gradWeights, gradStream));
        return [gradWeights, gradStream];
    });

    /// <summary>The forward (<paramref name="result"/> given) or the backward (the gradients given).</summary>
    readonly unsafe struct Pass(Tensor weights, Tensor stream, Tensor? result, Tensor? grad, Tensor? fromDepthStep, Tensor? gradWeights, Tensor? gradStream) : IKernelBody
    {
        public void Run<T, TVector, TOps>()
            where T : unmanaged, IFloatingPointIeee754<T> where TVector : unmanaged where TOps : struct, IVectorOps<TVector, T>
        {
            int s = (int)stream.shape[^2], d = (int)stream.shape[^1];
            long tokens = stream.numel() / (s * d);
            bool shared = weights.dim() == 1;
            T* w = CpuLoops.Pointer<T>(weights), H = CpuLoops.Pointer<T>(stream);
            if (result is not null)
            {
                T* h = CpuLoops.Pointer<T>(result);
                CpuLoops.ForChunks(tokens, [MethodImpl(MethodImplOptions.AggressiveOptimization)] (_, first, end) =>
                {
                    var pointers = CpuLoops.Scratch<nint>(s + 1);
                    T** inputs = (T**)pointers, output = inputs + s;
                    for (long t = first; t < end; t++)
                    {
                        for (int i = 0; i < s; i++) inputs[i] = H + (t * s + i) * d;
                        output[0] = h + t * d;
                        CpuLoops.Mix<T, TVector, TOps>(output, 1, inputs, s, shared ? w : w + t * s, s, d);
                    }
                    CpuLoops.FreeScratch(pointers);
                });
                return;
            }

            T* g = CpuLoops.Pointer<T>(grad!), dw = CpuLoops.Pointer<T>(gradWeights!), dH = CpuLoops.Pointer<T>(gradStream!);
            T* dDepthStep = fromDepthStep is null ? null : CpuLoops.Pointer<T>(fromDepthStep);
            var sums = new double[CpuLoops.Chunks(tokens), s]; // the shared weights' gradient, per chunk
            CpuLoops.ForChunks(tokens, [MethodImpl(MethodImplOptions.AggressiveOptimization)] (chunk, first, end) =>
            {
                for (long t = first; t < end; t++)
                    for (int i = 0; i < s; i++)
                    {
                        T wi = shared ? w[i] : w[t * s + i];
                        if (dDepthStep is null) CpuLoops.Scale<T, TVector, TOps>(dH + (t * s + i) * d, g + t * d, wi, d);
                        else CpuLoops.Combine<T, TVector, TOps>(dH + (t * s + i) * d, wi, g + t * d, T.One, dDepthStep + (t * s + i) * d, null, d);
                        T dot = CpuLoops.Dot<T, TVector, TOps>(H + (t * s + i) * d, g + t * d, d);
                        if (shared) sums[chunk, i] += double.CreateTruncating(dot);
                        else dw[t * s + i] = dot;
                    }
            });
            if (shared)
                for (int i = 0; i < s; i++)
                {
                    double total = 0;
                    for (int c = 0; c < sums.GetLength(0); c++) total += sums[c, i];
                    dw[i] = T.CreateTruncating(total);
                }
        }
    }
}
