using System.Numerics;
using System.Runtime.CompilerServices;
using static TorchSharp.torch;

namespace ResidualLab.Connections.Kernels;

// Axes: ... any leading (batch) axes flattened into matrices, n the matrix size.

/// <summary>
/// <see cref="Sinkhorn"/> on CPU float32/float64 tensors as one autograd function: the rounds of a block of matrices run
/// at once, one matrix per vector lane (<see cref="SinkhornMap"/>), in the input's dtype; the backward recomputes the
/// rounds and walks them back. Blocks are split over torch's threads.
/// </summary>
internal sealed class SinkhornKernel : autograd.SingleTensorFunction<SinkhornKernel>
{
    public override string Name => nameof(SinkhornKernel);

    public override Tensor forward(autograd.AutogradContext ctx, params object[] vars)
    {
        var logits = ((Tensor)vars[0]).contiguous();
        int iterations = (int)vars[1];
        Check(logits);
        ctx.save_for_backward([logits]);
        ctx.save_data("iterations", iterations);
        var result = empty_like(logits);
        CpuLoops.Dispatch(logits.dtype, new Pass(new SinkhornMap((int)logits.shape[^1], iterations), logits, result, null, null));
        return result;
    }

    public override List<Tensor> backward(autograd.AutogradContext ctx, Tensor gradOutput) => BackwardMemory.Run([gradOutput], () =>
    {
        var logits = ctx.get_saved_variables()[0];
        int iterations = (int)ctx.get_data("iterations");
        var grad = gradOutput.to(logits.dtype).contiguous();
        var gradLogits = empty_like(logits);
        CpuLoops.Dispatch(logits.dtype, new Pass(new SinkhornMap((int)logits.shape[^1], iterations), logits, null, grad, gradLogits));
        return [gradLogits, null!];
    });

    static void Check(Tensor logits)
    {
        if (logits.dim() < 2 || logits.shape[^2] != logits.shape[^1])
            throw new ArgumentException($"Sinkhorn needs square matrices, got [{string.Join(", ", logits.shape)}]");
        if (logits.dtype is not (ScalarType.Float32 or ScalarType.Float64))
            throw new ArgumentException($"Sinkhorn's CPU kernel takes float32 or float64, got {logits.dtype}");
    }

    /// <summary>The forward (<paramref name="result"/> given) or the backward (the two gradients given) over all matrices.</summary>
    readonly unsafe struct Pass(SinkhornMap map, Tensor logits, Tensor? result, Tensor? grad, Tensor? gradLogits) : IKernelBody
    {
        public void Run<T, TVector, TOps>()
            where T : unmanaged, IFloatingPointIeee754<T> where TVector : unmanaged where TOps : struct, IVectorOps<TVector, T>
        {
            int size = map.Logits, lanes = TOps.Count;
            long matrices = logits.numel() / size;
            if (matrices == 0) return;
            T* input = CpuLoops.Pointer<T>(logits);
            T* output = result is null ? null : CpuLoops.Pointer<T>(result);
            T* upstream = grad is null ? null : CpuLoops.Pointer<T>(grad), downstream = gradLogits is null ? null : CpuLoops.Pointer<T>(gradLogits);
            var sinkhorn = map;
            CpuLoops.ForChunks((matrices + lanes - 1) / lanes, [MethodImpl(MethodImplOptions.AggressiveOptimization)] (_, firstBlock, endBlock) =>
            {
                var vectors = CpuLoops.Scratch<TVector>(3 * size + sinkhorn.StateVectors);
                TVector* z = vectors, m = z + size, g = m + size, state = g + size;
                var stage = CpuLoops.Scratch<T>(size * lanes);
                for (long block = firstBlock; block < endBlock; block++)
                {
                    long first = block * lanes;
                    int valid = (int)Math.Min(lanes, matrices - first);
                    CpuLoops.GatherLanes<T, TVector, TOps>(input, first, matrices, size, 0, size, z, stage);
                    if (output is not null)
                    {
                        sinkhorn.Forward<T, TVector, TOps>(z, m, state);
                        CpuLoops.ScatterLanes<T, TVector, TOps>(m, size, output, first, valid, size, 0, stage);
                        continue;
                    }
                    CpuLoops.GatherLanes<T, TVector, TOps>(upstream, first, matrices, size, 0, size, g, stage);
                    sinkhorn.Backward<T, TVector, TOps>(z, g, m, state);
                    CpuLoops.ScatterLanes<T, TVector, TOps>(m, size, downstream, first, valid, size, 0, stage);
                }
                CpuLoops.FreeScratch(vectors);
                CpuLoops.FreeScratch(stage);
            });
        }
    }
}
