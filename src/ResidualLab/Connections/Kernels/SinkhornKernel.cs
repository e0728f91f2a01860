using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using static TorchSharp.torch;

namespace ResidualLab.Connections.Kernels;

// Axes: ... any leading (batch) axes flattened into matrices, n the matrix size.

/// <summary>
/// <see cref="Sinkhorn"/> on CPU float32/float64 tensors as one autograd function: the forward runs
/// every round of four matrices at once, one per lane of a Vector256 (arithmetic in float64, result in
/// the input's dtype); the backward recomputes the rounds and walks them back. For a row normalisation
/// m'_ij = m_ij / s_i the chain rule gives dL/dm_ij = (g_ij - sum_k g_ik m'_ik) / s_i (columns alike);
/// the first step m = exp(x - max x) gives dL/dx = m * dL/dm. Matrices are split over torch's threads.
/// </summary>
internal sealed class SinkhornKernel : autograd.SingleTensorFunction<SinkhornKernel>
{
    public override string Name => nameof(SinkhornKernel);

    public override Tensor forward(autograd.AutogradContext ctx, params object[] vars)
    {
        var logits = ((Tensor)vars[0]).contiguous();
        int iterations = (int)vars[1];
        ctx.save_for_backward([logits]);
        ctx.save_data("iterations", iterations);
        var result = empty_like(logits);
        Run(logits, result, null, null, iterations);
        return result;
    }

    public override List<Tensor> backward(autograd.AutogradContext ctx, Tensor gradOutput)
    {
        var logits = ctx.get_saved_variables()[0];
        int iterations = (int)ctx.get_data("iterations");
        var grad = gradOutput.to(logits.dtype).contiguous();
        var gradLogits = empty_like(logits);
        Run(logits, null, grad, gradLogits, iterations);
        return [gradLogits, null!];
    }

    /// <summary>Forward (<paramref name="result"/> given) or backward (the two gradients given) over all matrices.</summary>
    internal static unsafe void Run(Tensor logits, Tensor? result, Tensor? grad, Tensor? gradLogits, int iterations)
    {
        int n = (int)logits.shape[^1];
        if (logits.dim() < 2 || logits.shape[^2] != n) throw new ArgumentException($"Sinkhorn needs square matrices, got [{string.Join(", ", logits.shape)}]");
        long matrices = logits.numel() / (n * n);
        bool isDouble = logits.dtype == ScalarType.Float64;
        if (!isDouble && logits.dtype != ScalarType.Float32) throw new ArgumentException($"Sinkhorn's CPU kernel takes float32 or float64, got {logits.dtype}");
        if (matrices == 0) return;

        nint input = Address(logits), output = Address(result), upstream = Address(grad), downstream = Address(gradLogits);
        long blocks = (matrices + Lanes - 1) / Lanes;
        CpuLoops.ForChunks(blocks, [MethodImpl(MethodImplOptions.AggressiveOptimization)] (_, firstBlock, endBlock) =>
        {
            int size = n * n, steps = 2 * iterations;
            var states = new Vector256<double>[(steps + 1) * size]; // exp(x - max), then every normalised round
            var g = new Vector256<double>[size];
            Span<long> lane = stackalloc long[Lanes];
            fixed (Vector256<double>* st = states, gp = g)
                for (long block = firstBlock; block < endBlock; block++)
                {
                    // Lane l holds matrix block * Lanes + l; past the end, lanes repeat the last matrix.
                    for (int l = 0; l < Lanes; l++) lane[l] = Math.Min(block * Lanes + l, matrices - 1) * size;
                    for (int e = 0; e < size; e++) st[e] = Gather(input, isDouble, lane, e);
                    Rounds(st, n, steps);
                    if (output != 0)
                    {
                        for (int e = 0; e < size; e++) Scatter(output, isDouble, lane, e, st[steps * size + e]);
                        continue;
                    }
                    for (int e = 0; e < size; e++) gp[e] = Gather(upstream, isDouble, lane, e);
                    for (int step = steps; step >= 1; step--)
                        NormalisationBackward(st + step * size, st + (step - 1) * size, gp, n, rows: step % 2 == 1);
                    for (int e = 0; e < size; e++) Scatter(downstream, isDouble, lane, e, gp[e] * st[e]);
                }
        });
    }

    /// <summary>st[0..n n) holds the logits on entry; fills exp(x - max) and the <paramref name="steps"/> normalised matrices after it.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static unsafe void Rounds(Vector256<double>* st, int n, int steps)
    {
        int size = n * n;
        var max = Vector256.Create(double.NegativeInfinity);
        for (int e = 0; e < size; e++) max = Vector256.Max(max, st[e]);
        for (int e = 0; e < size; e++)
        {
            var shifted = st[e] - max;
            st[e] = Vector256.Create(Math.Exp(shifted[0]), Math.Exp(shifted[1]), Math.Exp(shifted[2]), Math.Exp(shifted[3]));
        }
        for (int step = 1; step <= steps; step++)
        {
            Vector256<double>* before = st + (step - 1) * size, after = st + step * size;
            bool rows = step % 2 == 1;
            for (int line = 0; line < n; line++)
            {
                // Row line: elements line n + k; column line: elements k n + line.
                int at = rows ? line * n : line, stride = rows ? 1 : n;
                var sum = Vector256<double>.Zero;
                for (int k = 0; k < n; k++) sum += before[at + k * stride];
                var inverse = Vector256<double>.One / sum;
                for (int k = 0; k < n; k++) after[at + k * stride] = before[at + k * stride] * inverse;
            }
        }
    }

    /// <summary>g: dL/d(after) in, dL/d(before) = (g - sum_k g_k after_k) / sum_k before_k out, per row or column.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static unsafe void NormalisationBackward(Vector256<double>* after, Vector256<double>* before, Vector256<double>* g, int n, bool rows)
    {
        for (int line = 0; line < n; line++)
        {
            int at = rows ? line * n : line, stride = rows ? 1 : n;
            Vector256<double> dot = Vector256<double>.Zero, sum = Vector256<double>.Zero;
            for (int k = 0; k < n; k++)
            {
                dot += g[at + k * stride] * after[at + k * stride];
                sum += before[at + k * stride];
            }
            var inverse = Vector256<double>.One / sum;
            for (int k = 0; k < n; k++) g[at + k * stride] = (g[at + k * stride] - dot) * inverse;
        }
    }

    const int Lanes = 4; // matrices computed side by side, one per lane of a Vector256<double>

    static unsafe Vector256<double> Gather(nint data, bool isDouble, ReadOnlySpan<long> lane, int e) => isDouble
        ? Vector256.Create(((double*)data)[lane[0] + e], ((double*)data)[lane[1] + e], ((double*)data)[lane[2] + e], ((double*)data)[lane[3] + e])
        : Vector256.Create(((float*)data)[lane[0] + e], ((float*)data)[lane[1] + e], ((float*)data)[lane[2] + e], ((float*)data)[lane[3] + e]);

    /// <summary>Writes each lane back to its matrix (lanes repeating the last matrix write the same value again).</summary>
    static unsafe void Scatter(nint data, bool isDouble, ReadOnlySpan<long> lane, int e, Vector256<double> value)
    {
        for (int l = 0; l < Lanes; l++)
            if (isDouble) ((double*)data)[lane[l] + e] = value[l];
            else ((float*)data)[lane[l] + e] = (float)value[l];
    }

    static unsafe nint Address(Tensor? t) => t is null ? 0 : (nint)CpuLoops.Pointer<byte>(t);
}
