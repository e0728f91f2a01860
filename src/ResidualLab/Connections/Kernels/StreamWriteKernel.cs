using System.Runtime.CompilerServices;
using System.Numerics;
using static TorchSharp.torch;

namespace ResidualLab.Connections.Kernels;

// Axes: t tokens (all leading axes flattened), s streams, d width.

/// <summary>
/// <see cref="Streams.Write"/> on CPU float32/float64 tensors as one autograd function:
/// H'_j = sum_i D_ji H_i + D_js y, per token, with the hand-written backward
/// dH_i = sum_j D_ji G_j, dy = sum_j D_js G_j, dD_ji = G_j . H_i, dD_js = G_j . y.
/// A batched matmul of [s, s + 1] by [s + 1, d] per token, and its backward, are thousands of tiny
/// matrix products that the CPU BLAS runs slowly; here each token is one pass over its s d values,
/// vectorised along d and split over torch's threads.
/// </summary>
internal sealed class StreamWriteKernel : autograd.MultiTensorFunction<StreamWriteKernel>
{
    public override string Name => nameof(StreamWriteKernel);

    /// <summary>Whether the kernel takes these tensors (else the tensor operations run).</summary>
    public static bool Applies(Tensor depth, Tensor stream, Tensor output) => CpuLoops.Takes(stream, depth, output);

    /// <param name="vars">depth [t, s, s + 1], stream [t, s, d], output [t, d], all with the same leading shape.</param>
    public override List<Tensor> forward(autograd.AutogradContext ctx, params object[] vars)
    {
        var depth = ((Tensor)vars[0]).contiguous();
        var stream = ((Tensor)vars[1]).contiguous();
        var output = ((Tensor)vars[2]).contiguous();
        ctx.save_for_backward([depth, stream, output]);
        var result = empty_like(stream);
        if (stream.dtype == ScalarType.Float64) Forward<double>(depth, stream, output, result);
        else Forward<float>(depth, stream, output, result);
        return [result];
    }

    public override List<Tensor> backward(autograd.AutogradContext ctx, List<Tensor> gradOutputs)
    {
        var saved = ctx.get_saved_variables();
        Tensor depth = saved[0], stream = saved[1], output = saved[2];
        var grad = gradOutputs[0].to(stream.dtype).contiguous();
        Tensor gradDepth = empty_like(depth), gradStream = empty_like(stream), gradOutput = empty_like(output);
        if (stream.dtype == ScalarType.Float64) Backward<double>(depth, stream, output, grad, gradDepth, gradStream, gradOutput);
        else Backward<float>(depth, stream, output, grad, gradDepth, gradStream, gradOutput);
        return [gradDepth, gradStream, gradOutput];
    }

    static unsafe void Forward<T>(Tensor depth, Tensor stream, Tensor output, Tensor result) where T : unmanaged, INumber<T>
    {
        var (tokens, s, d) = Shape(stream);
        T* D = CpuLoops.Pointer<T>(depth), H = CpuLoops.Pointer<T>(stream), y = CpuLoops.Pointer<T>(output), R = CpuLoops.Pointer<T>(result);
        CpuLoops.ForTokens(tokens, [MethodImpl(MethodImplOptions.AggressiveOptimization)] (t) =>
        {
            for (int j = 0; j < s; j++)
            {
                T* dj = D + (t * s + j) * (s + 1);
                T* r = R + (t * s + j) * d;
                CpuLoops.Scale(r, y + t * d, dj[s], d);
                for (int i = 0; i < s; i++) CpuLoops.AddScaled(r, H + (t * s + i) * d, dj[i], d);
            }
        });
    }

    static unsafe void Backward<T>(Tensor depth, Tensor stream, Tensor output, Tensor grad,
        Tensor gradDepth, Tensor gradStream, Tensor gradOutput) where T : unmanaged, INumber<T>
    {
        var (tokens, s, d) = Shape(stream);
        T* D = CpuLoops.Pointer<T>(depth), H = CpuLoops.Pointer<T>(stream), y = CpuLoops.Pointer<T>(output), G = CpuLoops.Pointer<T>(grad);
        T* dD = CpuLoops.Pointer<T>(gradDepth), dH = CpuLoops.Pointer<T>(gradStream), dy = CpuLoops.Pointer<T>(gradOutput);
        CpuLoops.ForTokens(tokens, [MethodImpl(MethodImplOptions.AggressiveOptimization)] (t) =>
        {
            T* g = G + t * s * d;
            for (int i = 0; i < s; i++)
            {
                T* di = dH + (t * s + i) * d;
                CpuLoops.Scale(di, g, D[(t * s) * (s + 1) + i], d);
                for (int j = 1; j < s; j++) CpuLoops.AddScaled(di, g + j * d, D[(t * s + j) * (s + 1) + i], d);
            }
            CpuLoops.Scale(dy + t * d, g, D[(t * s) * (s + 1) + s], d);
            for (int j = 1; j < s; j++) CpuLoops.AddScaled(dy + t * d, g + j * d, D[(t * s + j) * (s + 1) + s], d);
            for (int j = 0; j < s; j++)
            {
                T* row = dD + (t * s + j) * (s + 1);
                for (int i = 0; i < s; i++) row[i] = CpuLoops.Dot(g + j * d, H + (t * s + i) * d, d);
                row[s] = CpuLoops.Dot(g + j * d, y + t * d, d);
            }
        });
    }

    static (long Tokens, int Streams, int Width) Shape(Tensor stream) =>
        (stream.numel() / (stream.shape[^2] * stream.shape[^1]), (int)stream.shape[^2], (int)stream.shape[^1]);
}
