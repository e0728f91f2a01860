using System.Numerics;
using System.Runtime.CompilerServices;
using static TorchSharp.torch;

namespace ResidualLab.Connections.Kernels;

// Axes: t tokens (all leading axes flattened), s streams, d width.

/// <summary>
/// <see cref="Streams.Write"/> on CPU float32/float64 tensors as one autograd function:
/// H'_j = sum_i D_ji H_i + D_js y, per token, with the hand-written backward
/// dH_i = sum_j D_ji G_j, dy = sum_j D_js G_j, dD_ji = G_j . H_i, dD_js = G_j . y.
/// D is per token [t, s, s + 1] (mHC, dynamic HC) or one matrix [s, s + 1] for every token (static HC), whose
/// gradient is summed over the tokens here (in float64) instead of being formed per token and reduced. The output y is
/// [t, d], added to every stream, or [t, s, d], y_j added to stream j (Frac-Connections' fractions of the output).
/// Each token is one pass over its s d values forward and one backward, vectorised along d and split over torch's threads
/// (a batched matmul of [s, s + 1] by [s + 1, d] per token is thousands of tiny products that the CPU BLAS runs slowly).
/// </summary>
internal sealed class StreamWriteKernel : autograd.MultiTensorFunction<StreamWriteKernel>
{
    public override string Name => nameof(StreamWriteKernel);

    /// <summary>Whether the kernel takes these tensors (else the tensor operations run).</summary>
    public static bool Applies(Tensor depth, Tensor stream, Tensor output) => CpuLoops.Takes(stream, depth, output);

    /// <param name="vars">depth [t, s, s + 1] or [s, s + 1], stream [t, s, d], output [t, d] or [t, s, d], with the same leading shape.</param>
    public override List<Tensor> forward(autograd.AutogradContext ctx, params object[] vars)
    {
        var depth = ((Tensor)vars[0]).contiguous();
        var stream = ((Tensor)vars[1]).contiguous();
        var output = ((Tensor)vars[2]).contiguous();
        ctx.save_for_backward([depth, stream, output]);
        var result = empty_like(stream);
        CpuLoops.Dispatch(stream.dtype, new Pass(depth, stream, output, result, null, null, null, null));
        return [result];
    }

    public override List<Tensor> backward(autograd.AutogradContext ctx, List<Tensor> gradOutputs) => BackwardMemory.Run(gradOutputs, () =>
    {
        var saved = ctx.get_saved_variables();
        Tensor depth = saved[0], stream = saved[1], output = saved[2];
        var grad = gradOutputs[0].to(stream.dtype).contiguous();
        Tensor gradDepth = empty_like(depth), gradStream = empty_like(stream), gradOutput = empty_like(output);
        CpuLoops.Dispatch(stream.dtype, new Pass(depth, stream, output, null, grad, gradDepth, gradStream, gradOutput));
        return [gradDepth, gradStream, gradOutput];
    });

    /// <summary>The forward (<paramref name="result"/> given) or the backward (the gradients given).</summary>
    readonly unsafe struct Pass(Tensor depth, Tensor stream, Tensor output, Tensor? result,
        Tensor? grad, Tensor? gradDepth, Tensor? gradStream, Tensor? gradOutput) : IKernelBody
    {
        public void Run<T, TVector, TOps>()
            where T : unmanaged, IFloatingPointIeee754<T> where TVector : unmanaged where TOps : struct, IVectorOps<TVector, T>
        {
            int s = (int)stream.shape[^2], d = (int)stream.shape[^1], m = s * (s + 1);
            long tokens = stream.numel() / (s * d);
            bool shared = depth.dim() == 2, perStream = output.dim() == stream.dim();
            T* D = CpuLoops.Pointer<T>(depth), H = CpuLoops.Pointer<T>(stream), y = CpuLoops.Pointer<T>(output);
            if (result is not null)
            {
                T* R = CpuLoops.Pointer<T>(result);
                CpuLoops.ForChunks(tokens, [MethodImpl(MethodImplOptions.AggressiveOptimization)] (_, first, end) =>
                {
                    var pointers = CpuLoops.Scratch<nint>(2 * s + 1);
                    T** outputs = (T**)pointers, inputs = outputs + s;
                    for (long t = first; t < end; t++)
                    {
                        for (int i = 0; i < s; i++)
                        {
                            outputs[i] = R + (t * s + i) * d;
                            inputs[i] = H + (t * s + i) * d;
                        }
                        T* Dt = shared ? D : D + t * m;
                        if (!perStream)
                        {
                            inputs[s] = y + t * d;
                            CpuLoops.Mix<T, TVector, TOps>(outputs, s, inputs, s + 1, Dt, s + 1, d);
                        }
                        else
                            for (int j = 0; j < s; j++)
                            {
                                inputs[s] = y + (t * s + j) * d;
                                CpuLoops.Mix<T, TVector, TOps>(outputs + j, 1, inputs, s + 1, Dt + j * (s + 1), s + 1, d);
                            }
                    }
                    CpuLoops.FreeScratch(pointers);
                });
                return;
            }

            T* G = CpuLoops.Pointer<T>(grad!), dD = CpuLoops.Pointer<T>(gradDepth!), dH = CpuLoops.Pointer<T>(gradStream!), dy = CpuLoops.Pointer<T>(gradOutput!);
            var sums = new double[CpuLoops.Chunks(tokens), m]; // the shared matrix's gradient, per chunk
            CpuLoops.ForChunks(tokens, [MethodImpl(MethodImplOptions.AggressiveOptimization)] (chunk, first, end) =>
            {
                var pointers = CpuLoops.Scratch<nint>(2 * s + 1);
                T** outputs = (T**)pointers, inputs = outputs + s + 1;
                T* transposed = CpuLoops.Scratch<T>(m), gradient = CpuLoops.Scratch<T>(m), dots = CpuLoops.Scratch<T>(m);
                for (long t = first; t < end; t++)
                {
                    T* Dt = shared ? D : D + t * m;
                    if (t == first || !shared)
                        for (int j = 0; j < s; j++)
                            for (int i = 0; i <= s; i++) transposed[i * s + j] = Dt[j * (s + 1) + i];
                    for (int j = 0; j < s; j++)
                    {
                        outputs[j] = dH + (t * s + j) * d;
                        inputs[j] = G + (t * s + j) * d;
                    }
                    outputs[s] = dy + t * d;
                    CpuLoops.Mix<T, TVector, TOps>(outputs, perStream ? s : s + 1, inputs, s, transposed, s, d);
                    if (perStream)
                        for (int j = 0; j < s; j++) CpuLoops.Scale<T, TVector, TOps>(dy + (t * s + j) * d, inputs[j], Dt[j * (s + 1) + s], d);
                    for (int i = 0; i < s; i++) outputs[i] = H + (t * s + i) * d; // the rows the gradient's rows are dotted with
                    outputs[s] = y + t * d;
                    int columns = perStream ? s : s + 1;
                    CpuLoops.Gram<T, TVector, TOps>(inputs, s, outputs, columns, d, dots);
                    T* row = shared ? gradient : dD + t * m;
                    for (int j = 0; j < s; j++)
                    {
                        for (int i = 0; i < columns; i++) row[j * (s + 1) + i] = dots[j * columns + i];
                        if (perStream) row[j * (s + 1) + s] = CpuLoops.Dot<T, TVector, TOps>(inputs[j], y + (t * s + j) * d, d);
                    }
                    if (shared)
                        for (int e = 0; e < m; e++) sums[chunk, e] += double.CreateTruncating(gradient[e]);
                }
                CpuLoops.FreeScratch(pointers);
                CpuLoops.FreeScratch(transposed);
                CpuLoops.FreeScratch(gradient);
                CpuLoops.FreeScratch(dots);
            });
            if (shared)
                for (int e = 0; e < m; e++)
                {
                    double total = 0;
                    for (int c = 0; c < sums.GetLength(0); c++) total += sums[c, e];
                    dD[e] = T.CreateTruncating(total);
                }
        }
    }
}
