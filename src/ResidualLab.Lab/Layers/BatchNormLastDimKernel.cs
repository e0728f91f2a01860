using System.Buffers;
using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using ResidualLab.Connections.Kernels;
using static TorchSharp.torch;

namespace ResidualLab.Layers;

// Axes: n rows (every leading axis flattened: batch and pixels), c channels (the last axis, contiguous).

/// <summary>
/// Batch normalisation over the last axis, optionally followed by a ReLU, on CPU float32/float64 tensors
/// as one autograd function (Ioffe and Szegedy 2015, arXiv 1502.03167, alg. 1 and its gradient):
/// <code>
/// training:   mean_c = sum_n x / n,  var_c = sum_n x^2 / n - mean_c^2,  invstd_c = 1 / sqrt(var_c + eps)
/// evaluation: mean_c, var_c are the running statistics
/// y = w_c (x - mean_c) invstd_c + b_c, then max(y, 0) with the ReLU
/// backward, g' = g (masked by y > 0 with the ReLU), xhat = (x - mean) invstd:
///   db_c = sum_n g',  dw_c = sum_n g' xhat
///   dx = w invstd (g' - db / n - xhat dw / n)   (training; evaluation: dx = w invstd g')
/// </code>
/// Every sum over rows is taken in float64, block by block over fixed blocks of <see cref="BlockRows"/>
/// rows, and the blocks' sums are added in block order, so the statistics and gradients are the same
/// bit for bit at any thread count. libtorch's channel-last batch norm sums each thread's share of the
/// rows serially in float32: its statistics carry rounding that grows with n and changes with the
/// thread count, which ReLUs after the norm can turn into different masks. Training updates the running
/// statistics in place with the unbiased variance (PyTorch's convention): r = (1 - m) r + m stat.
/// </summary>
internal sealed class BatchNormLastDimKernel : autograd.SingleTensorFunction<BatchNormLastDimKernel>
{
    /// <summary>Rows per block of every sum: fixed, so the order of additions does not follow the thread count.</summary>
    public const int BlockRows = 128;

    public override string Name => nameof(BatchNormLastDimKernel);

    /// <summary>Whether the kernel takes these tensors: all on the CPU, all float32 or all float64.</summary>
    public static bool Applies(Tensor x, Tensor weight) => CpuLoops.Takes(x, weight);

    /// <summary>y [..., c] for x [..., c]; training statistics update <paramref name="runningMean"/> and <paramref name="runningVar"/> in place.</summary>
    public static Tensor Run(Tensor x, Tensor weight, Tensor bias, Tensor runningMean, Tensor runningVar,
        bool training, double momentum, double eps, bool relu) =>
        apply(x, weight, bias, runningMean, runningVar, training, momentum, eps, relu);

    public override Tensor forward(autograd.AutogradContext ctx, params object[] vars)
    {
        var x = ((Tensor)vars[0]).contiguous();
        Tensor weight = (Tensor)vars[1], bias = (Tensor)vars[2], runningMean = (Tensor)vars[3], runningVar = (Tensor)vars[4];
        bool training = (bool)vars[5], relu = (bool)vars[8];
        double momentum = (double)vars[6], eps = (double)vars[7];
        int c = (int)x.shape[^1];
        long n = x.numel() / c;
        if (training && n < 2) throw new ArgumentException($"batch norm needs more than one value per channel to train, got input [{string.Join(", ", x.shape)}]");

        double[] mean, invstd;
        if (training)
        {
            var sums = x.dtype == ScalarType.Float64 ? ChannelSums<double>(x, null, null, n, c) : ChannelSums<float>(x, null, null, n, c);
            mean = new double[c];
            invstd = new double[c];
            var variance = new double[c];
            for (int k = 0; k < c; k++)
            {
                mean[k] = sums[k] / n;
                variance[k] = Math.Max(0, sums[c + k] / n - mean[k] * mean[k]);
                invstd[k] = 1 / Math.Sqrt(variance[k] + eps);
            }
            UpdateRunning(runningMean, mean, momentum);
            UpdateRunning(runningVar, variance.Select(v => v * n / (n - 1)).ToArray(), momentum);
        }
        else
        {
            mean = Values(runningMean);
            invstd = Values(runningVar).Select(v => 1 / Math.Sqrt(v + eps)).ToArray();
        }

        var w = Values(weight);
        var b = Values(bias);
        var alpha = Enumerable.Range(0, c).Select(k => w[k] * invstd[k]).ToArray();
        var beta = Enumerable.Range(0, c).Select(k => b[k] - mean[k] * alpha[k]).ToArray();
        var y = empty_like(x);
        if (x.dtype == ScalarType.Float64) Affine<double>(x, null, null, y, alpha, [], beta, n, c, relu);
        else Affine<float>(x, null, null, y, alpha, [], beta, n, c, relu);

        ctx.save_for_backward([x, y]);
        ctx.save_data("mean", mean);
        ctx.save_data("invstd", invstd);
        ctx.save_data("weight", w);
        ctx.save_data("training", training);
        ctx.save_data("relu", relu);
        return y;
    }

    public override List<Tensor> backward(autograd.AutogradContext ctx, Tensor gradOutput)
    {
        var saved = ctx.get_saved_variables();
        Tensor x = saved[0], y = saved[1];
        var mean = (double[])ctx.get_data("mean");
        var invstd = (double[])ctx.get_data("invstd");
        var w = (double[])ctx.get_data("weight");
        bool training = (bool)ctx.get_data("training"), relu = (bool)ctx.get_data("relu");
        var g = gradOutput.to(x.dtype).contiguous();
        int c = (int)x.shape[^1];
        long n = x.numel() / c;
        var mask = relu ? y : null;

        var sums = x.dtype == ScalarType.Float64 ? ChannelSums<double>(g, x, mask, n, c) : ChannelSums<float>(g, x, mask, n, c);
        var gradBias = new double[c];
        var gradWeight = new double[c];
        var scaleG = new double[c];
        var scaleX = new double[c];
        var shift = new double[c];
        for (int k = 0; k < c; k++)
        {
            gradBias[k] = sums[k];
            gradWeight[k] = (sums[c + k] - mean[k] * sums[k]) * invstd[k];   // sum g' (x - mean) invstd
            scaleG[k] = w[k] * invstd[k];
            if (!training) continue;
            scaleX[k] = -scaleG[k] * invstd[k] * gradWeight[k] / n;
            shift[k] = -scaleG[k] * gradBias[k] / n - scaleX[k] * mean[k];
        }
        var gradInput = empty_like(x);
        if (x.dtype == ScalarType.Float64) Affine<double>(g, x, mask, gradInput, scaleG, scaleX, shift, n, c, relu: false);
        else Affine<float>(g, x, mask, gradInput, scaleG, scaleX, shift, n, c, relu: false);

        return [gradInput, tensor(gradWeight, dtype: x.dtype), tensor(gradBias, dtype: x.dtype), null!, null!, null!, null!, null!, null!];
    }

    static double[] Values(Tensor t) => t.to(ScalarType.Float64).data<double>().ToArray();

    static void UpdateRunning(Tensor running, double[] statistic, double momentum)
    {
        using var _ = no_grad();
        running.mul_(1 - momentum).add_(tensor(statistic, dtype: running.dtype), alpha: momentum);
    }

    /// <summary>
    /// [2c] in float64: sum_n u' and sum_n u' v per channel, where u' = u masked by <paramref name="mask"/> &gt; 0
    /// (no mask: u' = u) and v = u when <paramref name="v"/> is null; summed per block of <see cref="BlockRows"/> rows,
    /// the blocks added in order.
    /// </summary>
    static unsafe double[] ChannelSums<T>(Tensor u, Tensor? v, Tensor? mask, long n, int c) where T : unmanaged, IFloatingPointIeee754<T>
    {
        long blocks = (n + BlockRows - 1) / BlockRows;
        int width = 2 * c;
        var partial = ArrayPool<double>.Shared.Rent((int)(blocks * width));
        try
        {
            T* pu = CpuLoops.Pointer<T>(u), pv = v is null ? pu : CpuLoops.Pointer<T>(v), pm = mask is null ? null : CpuLoops.Pointer<T>(mask);
            fixed (double* sums = partial)
            {
                double* s = sums;
                CpuLoops.ForChunks(blocks, [MethodImpl(MethodImplOptions.AggressiveOptimization)] (_, first, end) =>
                {
                    for (long block = first; block < end; block++)
                    {
                        long row = block * BlockRows, rows = Math.Min(BlockRows, n - row);
                        BlockSums(pu + row * c, pv + row * c, pm is null ? null : pm + row * c, rows, c, s + block * width);
                    }
                });
            }
            var total = new double[width];
            for (long block = 0; block < blocks; block++)
                for (int k = 0; k < width; k++) total[k] += partial[block * width + k];
            return total;
        }
        finally
        {
            ArrayPool<double>.Shared.Return(partial);
        }
    }

    /// <summary>One block's sums (see <see cref="ChannelSums{T}"/>) into s[0..2c): eight float32 or four float64 channels per vector step, column by column.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static unsafe void BlockSums<T>(T* u, T* v, T* mask, long rows, int c, double* s) where T : unmanaged, IFloatingPointIeee754<T>
    {
        int k = 0;
        if (typeof(T) == typeof(float))
        {
            float* fu = (float*)u, fv = (float*)v, fm = (float*)mask;
            for (; k <= c - 8; k += 8)
            {
                Vector256<double> su0 = default, su1 = default, suv0 = default, suv1 = default;
                for (long r = 0; r < rows; r++)
                {
                    long at = r * c + k;
                    var a = Vector256.Load(fu + at);
                    if (fm != null) a = Vector256.ConditionalSelect(Vector256.GreaterThan(Vector256.Load(fm + at), Vector256<float>.Zero), a, Vector256<float>.Zero);
                    var b = Vector256.Load(fv + at);
                    var (a0, a1) = Vector256.Widen(a);
                    var (b0, b1) = Vector256.Widen(b);
                    su0 += a0; su1 += a1;
                    suv0 += a0 * b0; suv1 += a1 * b1;
                }
                su0.Store(s + k); su1.Store(s + k + 4);
                suv0.Store(s + c + k); suv1.Store(s + c + k + 4);
            }
        }
        else
        {
            double* du = (double*)u, dv = (double*)v, dm = (double*)mask;
            for (; k <= c - 4; k += 4)
            {
                Vector256<double> su = default, suv = default;
                for (long r = 0; r < rows; r++)
                {
                    long at = r * c + k;
                    var a = Vector256.Load(du + at);
                    if (dm != null) a = Vector256.ConditionalSelect(Vector256.GreaterThan(Vector256.Load(dm + at), Vector256<double>.Zero), a, Vector256<double>.Zero);
                    su += a;
                    suv += a * Vector256.Load(dv + at);
                }
                su.Store(s + k);
                suv.Store(s + c + k);
            }
        }
        for (; k < c; k++)
        {
            double su = 0, suv = 0;
            for (long r = 0; r < rows; r++)
            {
                long at = r * c + k;
                double a = mask != null && !(mask[at] > T.Zero) ? 0 : double.CreateTruncating(u[at]);
                su += a;
                suv += a * double.CreateTruncating(v[at]);
            }
            s[k] = su;
            s[c + k] = suv;
        }
    }

    /// <summary>
    /// out = scaleA a' + scaleB b + shift per channel (then max(., 0) with <paramref name="relu"/>), where a' = a masked by
    /// <paramref name="mask"/> &gt; 0; no <paramref name="b"/>: out = scaleA a' + shift. The tensors are walked flat, a vector
    /// at a time, in periods of lcm(c, vector length) elements over which the per-channel coefficients repeat.
    /// </summary>
    static unsafe void Affine<T>(Tensor a, Tensor? b, Tensor? mask, Tensor output, double[] scaleA, double[] scaleB, double[] shift,
        long n, int c, bool relu) where T : unmanaged, IFloatingPointIeee754<T>
    {
        T* pa = CpuLoops.Pointer<T>(a), pb = b is null ? null : CpuLoops.Pointer<T>(b), pm = mask is null ? null : CpuLoops.Pointer<T>(mask), po = CpuLoops.Pointer<T>(output);
        int period = c / (int)BigInteger.GreatestCommonDivisor(c, Vector256<T>.Count) * Vector256<T>.Count;
        T[] Pattern(double[] coefficients) => Enumerable.Range(0, period).Select(k => T.CreateTruncating(coefficients.Length == 0 ? 0 : coefficients[k % c])).ToArray();
        T[] sa = Pattern(scaleA), sb = Pattern(scaleB), sh = Pattern(shift);
        long periods = n * c / period;
        CpuLoops.ForChunks(periods, [MethodImpl(MethodImplOptions.AggressiveOptimization)] (_, first, end) =>
        {
            fixed (T* ka = sa, kb = sb, ks = sh)
                for (long p = first; p < end; p++)
                {
                    long at = p * period;
                    AffineVectors(pa + at, pb is null ? null : pb + at, pm is null ? null : pm + at, po + at, ka, kb, ks, period, relu);
                }
        });
        for (long e = periods * period; e < n * c; e++)
        {
            int k = (int)(e % c);
            T x = pm != null && !(pm[e] > T.Zero) ? T.Zero : pa[e];
            T r = x * sa[k] + sh[k];
            if (pb != null) r += pb[e] * sb[k];
            po[e] = relu && r < T.Zero ? T.Zero : r;
        }
    }

    /// <summary>One period: <paramref name="count"/> elements (a multiple of the vector length) with their coefficients.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    static unsafe void AffineVectors<T>(T* a, T* b, T* mask, T* o, T* sa, T* sb, T* sh, int count, bool relu) where T : unmanaged, IFloatingPointIeee754<T>
    {
        for (int k = 0; k < count; k += Vector256<T>.Count)
        {
            var x = Vector256.Load(a + k);
            if (mask != null) x = Vector256.ConditionalSelect(Vector256.GreaterThan(Vector256.Load(mask + k), Vector256<T>.Zero), x, Vector256<T>.Zero);
            var r = x * Vector256.Load(sa + k) + Vector256.Load(sh + k);
            if (b != null) r += Vector256.Load(b + k) * Vector256.Load(sb + k);
            if (relu) r = Vector256.ConditionalSelect(Vector256.LessThan(r, Vector256<T>.Zero), Vector256<T>.Zero, r); // NaN stays NaN
            r.Store(o + k);
        }
    }
}
