using System.Runtime.CompilerServices;
using System.Numerics;
using static TorchSharp.torch;

namespace ResidualLab.Connections.Kernels;

// Axes: t tokens (all leading axes flattened), s streams, d width, K = 2 s + s^2 map coefficients.

/// <summary>
/// mHC's width step on CPU float32/float64 tensors as one autograd function: from the stream H [t, s, d],
/// c = (flatten(H) phi) / rms(flatten(H)), H_pre = sigmoid(a_pre c_pre + b_pre), H_post = 2 sigmoid(a_post c_post + b_post),
/// H_res = Sinkhorn(a_res c_res + b_res), and the read h = sum_s H_pre,s H_s; the same function as
/// <see cref="ManifoldHyperConnections.Maps"/> followed by <see cref="Streams.Read"/>.
/// The two products with phi run as matrix multiplies; everything else is one pass per token over
/// its s d values forward, and one backward, which writes the stream's gradient once
/// (the RMS, read and phi terms together) instead of three tensors that autograd then adds.
/// Backward per token, with u = 1 / rms, N = s d, z the pre-activations and c = u (H phi):
/// dz from the sigmoids and Sinkhorn, dc = a dz, d(H phi) = u dc, du = dc . (H phi),
/// dH_s = H_pre,s g + 2 H_s du (-u^3 / 2N) + (u dc phi^T)_s, dH_pre,s also gets H_s . g.
/// </summary>
internal sealed class MhcWidthStepKernel : autograd.MultiTensorFunction<MhcWidthStepKernel>
{
    public override string Name => nameof(MhcWidthStepKernel);

    public static bool Applies(Tensor stream, Tensor phi) => CpuLoops.Takes(stream, phi);

    /// <summary>The read [..., d] and the maps H_pre [..., s], H_post [..., s], H_res [..., s, s] of <paramref name="stream"/> [..., s, d].</summary>
    /// <param name="alphas">[3]: a_pre, a_post, a_res.</param>
    /// <param name="biases">[K]: b_pre, b_post, b_res flattened.</param>
    public static (Tensor Read, Tensor Pre, Tensor Post, Tensor Res) Run(Tensor stream, Tensor phi, Tensor alphas, Tensor biases, int iterations, double eps)
    {
        var outputs = apply(stream, phi, alphas.to(stream.dtype), biases.to(stream.dtype), iterations, eps);
        return (outputs[0], outputs[1], outputs[2], outputs[3]);
    }

    public override List<Tensor> forward(autograd.AutogradContext ctx, params object[] vars)
    {
        var stream = ((Tensor)vars[0]).contiguous();
        var phi = ((Tensor)vars[1]).contiguous();
        var alphas = ((Tensor)vars[2]).contiguous();
        var biases = ((Tensor)vars[3]).contiguous();
        int iterations = (int)vars[4];
        double eps = (double)vars[5];
        long[] lead = stream.shape[..^2];
        long s = stream.shape[^2], d = stream.shape[^1], tokens = stream.numel() / (s * d);

        var projected = stream.reshape(tokens, s * d).matmul(phi);      // H phi, [t, K]
        var inverseRms = empty(tokens, dtype: stream.dtype);
        var read = empty([.. lead, d], stream.dtype);
        var pre = empty([.. lead, s], stream.dtype);
        var post = empty([.. lead, s], stream.dtype);
        var resLogits = empty([.. lead, s, s], stream.dtype);
        if (stream.dtype == ScalarType.Float64) Forward<double>(stream, projected, alphas, biases, eps, inverseRms, read, pre, post, resLogits);
        else Forward<float>(stream, projected, alphas, biases, eps, inverseRms, read, pre, post, resLogits);
        var res = empty_like(resLogits);
        SinkhornKernel.Run(resLogits, res, null, null, iterations);

        ctx.save_for_backward([stream, phi, alphas, projected, inverseRms, pre, post, resLogits]);
        ctx.save_data("iterations", iterations);
        return [read, pre, post, res];
    }

    public override List<Tensor> backward(autograd.AutogradContext ctx, List<Tensor> gradOutputs)
    {
        var saved = ctx.get_saved_variables();
        Tensor stream = saved[0], phi = saved[1], alphas = saved[2], projected = saved[3], inverseRms = saved[4],
            pre = saved[5], post = saved[6], resLogits = saved[7];
        int iterations = (int)ctx.get_data("iterations");
        var g = gradOutputs.Select(x => x.to(stream.dtype).contiguous()).ToList(); // read, pre, post, res
        long s = stream.shape[^2], d = stream.shape[^1], tokens = stream.numel() / (s * d);

        var gradResLogits = empty_like(resLogits);
        SinkhornKernel.Run(resLogits, null, g[3], gradResLogits, iterations);
        var gradProjected = empty_like(projected);                    // d(H phi), [t, K]
        var gradStream = empty([tokens, s * d], stream.dtype);
        var sums = new double[CpuLoops.Chunks(tokens), 3 + projected.shape[1]]; // per chunk: da_pre, da_post, da_res, db
        if (stream.dtype == ScalarType.Float64)
            Backward<double>(stream, projected, alphas, inverseRms, pre, post, g[0], g[1], g[2], gradResLogits, gradProjected, gradStream, sums);
        else
            Backward<float>(stream, projected, alphas, inverseRms, pre, post, g[0], g[1], g[2], gradResLogits, gradProjected, gradStream, sums);

        gradStream.addmm_(gradProjected, phi.t());
        var gradPhi = stream.reshape(tokens, s * d).t().matmul(gradProjected);
        var totals = Enumerable.Range(0, sums.GetLength(1)).Select(k => Enumerable.Range(0, sums.GetLength(0)).Sum(c => sums[c, k])).ToArray();
        var gradAlphas = tensor(totals[..3], dtype: stream.dtype);
        var gradBiases = tensor(totals[3..], dtype: stream.dtype);
        return [gradStream.reshape(stream.shape), gradPhi, gradAlphas, gradBiases, null!, null!];
    }

    static unsafe void Forward<T>(Tensor stream, Tensor projected, Tensor alphas, Tensor biases, double eps,
        Tensor inverseRms, Tensor read, Tensor pre, Tensor post, Tensor resLogits) where T : unmanaged, IFloatingPointIeee754<T>
    {
        int s = (int)stream.shape[^2], d = (int)stream.shape[^1], n = s * d, k = (int)projected.shape[1];
        T* H = CpuLoops.Pointer<T>(stream), P = CpuLoops.Pointer<T>(projected), a = CpuLoops.Pointer<T>(alphas), b = CpuLoops.Pointer<T>(biases);
        T* u = CpuLoops.Pointer<T>(inverseRms), h = CpuLoops.Pointer<T>(read), wPre = CpuLoops.Pointer<T>(pre), wPost = CpuLoops.Pointer<T>(post), z = CpuLoops.Pointer<T>(resLogits);
        CpuLoops.ForTokens(inverseRms.numel(), [MethodImpl(MethodImplOptions.AggressiveOptimization)] (t) =>
        {
            T* x = H + t * n, p = P + t * k;
            double sumOfSquares = double.CreateTruncating(CpuLoops.Dot(x, x, n));
            double inverse = 1 / Math.Sqrt(sumOfSquares / n + eps);
            u[t] = T.CreateTruncating(inverse);
            for (int i = 0; i < s; i++)
            {
                wPre[t * s + i] = T.CreateTruncating(Sigmoid(D(a[0]) * D(p[i]) * inverse + D(b[i])));
                wPost[t * s + i] = T.CreateTruncating(2 * Sigmoid(D(a[1]) * D(p[s + i]) * inverse + D(b[s + i])));
            }
            for (int e = 0; e < s * s; e++)
                z[t * s * s + e] = T.CreateTruncating(D(a[2]) * D(p[2 * s + e]) * inverse + D(b[2 * s + e]));
            CpuLoops.Scale(h + t * d, x, wPre[t * s], d);
            for (int i = 1; i < s; i++) CpuLoops.AddScaled(h + t * d, x + i * d, wPre[t * s + i], d);
        });
    }

    static unsafe void Backward<T>(Tensor stream, Tensor projected, Tensor alphas, Tensor inverseRms, Tensor pre, Tensor post,
        Tensor gradRead, Tensor gradPre, Tensor gradPost, Tensor gradResLogits, Tensor gradProjected, Tensor gradStream, double[,] sums)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int s = (int)stream.shape[^2], d = (int)stream.shape[^1], n = s * d, k = (int)projected.shape[1];
        T* H = CpuLoops.Pointer<T>(stream), P = CpuLoops.Pointer<T>(projected), a = CpuLoops.Pointer<T>(alphas), u = CpuLoops.Pointer<T>(inverseRms);
        T* wPre = CpuLoops.Pointer<T>(pre), wPost = CpuLoops.Pointer<T>(post);
        T* gh = CpuLoops.Pointer<T>(gradRead), gPre = CpuLoops.Pointer<T>(gradPre), gPost = CpuLoops.Pointer<T>(gradPost), gz = CpuLoops.Pointer<T>(gradResLogits);
        T* dP = CpuLoops.Pointer<T>(gradProjected), dH = CpuLoops.Pointer<T>(gradStream);
        CpuLoops.ForChunks(inverseRms.numel(), [MethodImpl(MethodImplOptions.AggressiveOptimization)] (chunk, first, end) =>
        {
            var dz = new double[k]; // gradient of the pre-activations a c + b
            for (long t = first; t < end; t++)
            {
                T* x = H + t * n, p = P + t * k, g = gh + t * d;
                double inverse = D(u[t]);
                for (int i = 0; i < s; i++)
                {
                    double wi = D(wPre[t * s + i]), qi = D(wPost[t * s + i]);
                    double dRead = D(gPre[t * s + i]) + D(CpuLoops.Dot(x + i * d, g, d));
                    dz[i] = dRead * wi * (1 - wi);
                    dz[s + i] = D(gPost[t * s + i]) * qi * (1 - qi / 2);
                }
                for (int e = 0; e < s * s; e++) dz[2 * s + e] = D(gz[t * s * s + e]);
                double dInverse = 0;
                for (int e = 0; e < k; e++)
                {
                    int group = e < s ? 0 : e < 2 * s ? 1 : 2;
                    double projection = D(p[e]), dc = D(a[group]) * dz[e];
                    sums[chunk, group] += dz[e] * projection * inverse;
                    sums[chunk, 3 + e] += dz[e];
                    dP[t * k + e] = T.CreateTruncating(dc * inverse);
                    dInverse += dc * projection;
                }
                double dSumOfSquares = -dInverse * inverse * inverse * inverse / (2.0 * n);
                for (int i = 0; i < s; i++)
                {
                    CpuLoops.Scale(dH + t * n + i * d, g, wPre[t * s + i], d);
                    CpuLoops.AddScaled(dH + t * n + i * d, x + i * d, T.CreateTruncating(2 * dSumOfSquares), d);
                }
            }
        });
    }

    static double D<T>(T value) where T : INumberBase<T> => double.CreateTruncating(value);

    static double Sigmoid(double z) => 1 / (1 + Math.Exp(-z));
}
