using System.Numerics;
using System.Runtime.CompilerServices;

namespace ResidualLab.Connections.Kernels;

// Axes: n the number of streams, r the map's logits; every value is a vector of tokens (one token per lane).

/// <summary>
/// H_res [n, n] from its logits, and the backward, computed for a block of tokens at once, one token per vector lane:
/// Sinkhorn for mHC, the convex combination of permutations for mHC-lite, the Kronecker product of 2 x 2 factors for
/// KromHC. Each recomputes its forward in the backward from the logits (nothing is stored between the passes).
/// </summary>
internal interface IResidualMap
{
    /// <summary>The number of logits r.</summary>
    int Logits { get; }

    /// <summary>The vectors of working memory <see cref="Forward"/> and <see cref="Backward"/> need.</summary>
    int StateVectors { get; }

    /// <summary>res [n n] (row-major) from logits [r].</summary>
    unsafe void Forward<T, TVector, TOps>(TVector* logits, TVector* res, TVector* state)
        where T : unmanaged, IFloatingPointIeee754<T> where TVector : unmanaged where TOps : struct, IVectorOps<TVector, T>;

    /// <summary>gradLogits [r] from the gradient of res, gradRes [n n] (overwritten).</summary>
    unsafe void Backward<T, TVector, TOps>(TVector* logits, TVector* gradRes, TVector* gradLogits, TVector* state)
        where T : unmanaged, IFloatingPointIeee754<T> where TVector : unmanaged where TOps : struct, IVectorOps<TVector, T>;
}

/// <summary>
/// Sinkhorn-Knopp as <see cref="Sinkhorn.ProjectWithTensorOps"/> defines it: m = exp(x - max x), then
/// <see cref="Iterations"/> rounds of row then column normalisation. The backward keeps every round's matrix: for a
/// normalisation m'_ij = m_ij / s_i the chain rule gives dL/dm_ij = (g_ij - sum_k g_ik m'_ik) / s_i (columns alike),
/// and the first step gives dL/dx = m dL/dm (the maximum cancels in the normalisations).
/// </summary>
internal readonly struct SinkhornMap(int n, int iterations) : IResidualMap
{
    public int N => n;
    public int Iterations => iterations;
    public int Logits => n * n;
    public int StateVectors => (2 * iterations + 1) * n * n;

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public unsafe void Forward<T, TVector, TOps>(TVector* logits, TVector* res, TVector* state)
        where T : unmanaged, IFloatingPointIeee754<T> where TVector : unmanaged where TOps : struct, IVectorOps<TVector, T>
    {
        Exponentiate<T, TVector, TOps>(logits, res);
        for (int step = 1; step <= 2 * iterations; step++) Normalise<T, TVector, TOps>(res, res, n, rows: step % 2 == 1);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public unsafe void Backward<T, TVector, TOps>(TVector* logits, TVector* gradRes, TVector* gradLogits, TVector* state)
        where T : unmanaged, IFloatingPointIeee754<T> where TVector : unmanaged where TOps : struct, IVectorOps<TVector, T>
    {
        int size = n * n, steps = 2 * iterations;
        Exponentiate<T, TVector, TOps>(logits, state);
        for (int step = 1; step <= steps; step++) Normalise<T, TVector, TOps>(state + (step - 1) * size, state + step * size, n, rows: step % 2 == 1);
        for (int step = steps; step >= 1; step--)
        {
            TVector* after = state + step * size, before = state + (step - 1) * size;
            bool rows = step % 2 == 1;
            for (int line = 0; line < n; line++)
            {
                // Row line: elements line n + k; column line: elements k n + line.
                int at = rows ? line * n : line, stride = rows ? 1 : n;
                TVector dot = TOps.Zero, sum = TOps.Zero;
                for (int k = 0; k < n; k++)
                {
                    dot = TOps.MultiplyAdd(gradRes[at + k * stride], after[at + k * stride], dot);
                    sum = TOps.Add(sum, before[at + k * stride]);
                }
                var inverse = TOps.Divide(TOps.Broadcast(T.One), sum);
                for (int k = 0; k < n; k++) gradRes[at + k * stride] = TOps.Multiply(TOps.Subtract(gradRes[at + k * stride], dot), inverse);
            }
        }
        for (int e = 0; e < size; e++) gradLogits[e] = TOps.Multiply(gradRes[e], state[e]);
    }

    /// <summary>m = exp(x - max x) over the n n logits of each lane.</summary>
    unsafe void Exponentiate<T, TVector, TOps>(TVector* logits, TVector* m)
        where T : unmanaged, IFloatingPointIeee754<T> where TVector : unmanaged where TOps : struct, IVectorOps<TVector, T>
    {
        int size = n * n;
        TVector max = logits[0];
        for (int e = 1; e < size; e++) max = TOps.Max(max, logits[e]);
        for (int e = 0; e < size; e++) m[e] = TOps.Exp(TOps.Subtract(logits[e], max));
    }

    /// <summary>after = before with every row (or column) divided by its sum; after may be before.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static unsafe void Normalise<T, TVector, TOps>(TVector* before, TVector* after, int n, bool rows)
        where T : unmanaged, IFloatingPointIeee754<T> where TVector : unmanaged where TOps : struct, IVectorOps<TVector, T>
    {
        for (int line = 0; line < n; line++)
        {
            int at = rows ? line * n : line, stride = rows ? 1 : n;
            TVector sum = before[at];
            for (int k = 1; k < n; k++) sum = TOps.Add(sum, before[at + k * stride]);
            for (int k = 0; k < n; k++) after[at + k * stride] = TOps.Divide(before[at + k * stride], sum);
        }
    }
}

/// <summary>
/// mHC-lite's H_res = sum_p a_p P_p, a = softmax(logits) over the n! permutations (<see cref="MhcLite"/>), with
/// P_p[i, perm_p(i)] = 1. Backward: dL/da_p = sum_i g[i, perm_p(i)], dL/dz = a (dL/da - sum_q a_q dL/da_q).
/// </summary>
internal readonly struct PermutationMap(int n, int[] permutations) : IResidualMap
{
    /// <summary>All n! permutations of 0..n-1 in the order of <see cref="MhcLite.PermutationMatrices"/>, flattened: entry p n + i is perm_p(i).</summary>
    public static int[] Table(int n)
    {
        var table = new List<int>();
        void Build(List<int> prefix, List<int> rest)
        {
            if (rest.Count == 0) { table.AddRange(prefix); return; }
            foreach (int i in rest) Build([.. prefix, i], rest.Where(r => r != i).ToList());
        }
        Build([], Enumerable.Range(0, n).ToList());
        return [.. table];
    }

    public int Logits => permutations.Length / n;
    public int StateVectors => Logits;

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public unsafe void Forward<T, TVector, TOps>(TVector* logits, TVector* res, TVector* state)
        where T : unmanaged, IFloatingPointIeee754<T> where TVector : unmanaged where TOps : struct, IVectorOps<TVector, T>
    {
        Softmax<T, TVector, TOps>(logits, state);
        for (int e = 0; e < n * n; e++) res[e] = TOps.Zero;
        fixed (int* perm = permutations)
            for (int p = 0; p < Logits; p++)
                for (int i = 0; i < n; i++) res[i * n + perm[p * n + i]] = TOps.Add(res[i * n + perm[p * n + i]], state[p]);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public unsafe void Backward<T, TVector, TOps>(TVector* logits, TVector* gradRes, TVector* gradLogits, TVector* state)
        where T : unmanaged, IFloatingPointIeee754<T> where TVector : unmanaged where TOps : struct, IVectorOps<TVector, T>
    {
        Softmax<T, TVector, TOps>(logits, state);
        TVector mean = TOps.Zero;
        fixed (int* perm = permutations)
            for (int p = 0; p < Logits; p++)
            {
                TVector g = gradRes[perm[p * n]];
                for (int i = 1; i < n; i++) g = TOps.Add(g, gradRes[i * n + perm[p * n + i]]);
                gradLogits[p] = g;
                mean = TOps.MultiplyAdd(state[p], g, mean);
            }
        for (int p = 0; p < Logits; p++) gradLogits[p] = TOps.Multiply(state[p], TOps.Subtract(gradLogits[p], mean));
    }

    unsafe void Softmax<T, TVector, TOps>(TVector* logits, TVector* weights)
        where T : unmanaged, IFloatingPointIeee754<T> where TVector : unmanaged where TOps : struct, IVectorOps<TVector, T>
    {
        TVector max = logits[0];
        for (int p = 1; p < Logits; p++) max = TOps.Max(max, logits[p]);
        TVector sum = TOps.Zero;
        for (int p = 0; p < Logits; p++) sum = TOps.Add(sum, weights[p] = TOps.Exp(TOps.Subtract(logits[p], max)));
        for (int p = 0; p < Logits; p++) weights[p] = TOps.Divide(weights[p], sum);
    }
}

/// <summary>
/// KromHC's H_res = U_1 (x) ... (x) U_K (<see cref="KromHc"/>), U_k = [[p_k, 1 - p_k], [1 - p_k, p_k]],
/// p_k = softmax(z_2k, z_2k+1)_0 = 1 / (1 + exp(z_2k+1 - z_2k)): entry [i, j] is the product over k of p_k where bit k of
/// i and j agree and 1 - p_k where they differ (factor 1 is the most significant bit). Backward: dL/dp_k sums g[i, j]
/// times the other factors, with the sign of the agreement; dz_2k = p_k (1 - p_k) dL/dp_k = -dz_2k+1.
/// </summary>
internal readonly struct KroneckerMap(int factors) : IResidualMap
{
    public int Logits => 2 * factors;
    public int StateVectors => factors;

    int N => 1 << factors;

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public unsafe void Forward<T, TVector, TOps>(TVector* logits, TVector* res, TVector* state)
        where T : unmanaged, IFloatingPointIeee754<T> where TVector : unmanaged where TOps : struct, IVectorOps<TVector, T>
    {
        Probabilities<T, TVector, TOps>(logits, state);
        int n = N;
        var one = TOps.Broadcast(T.One);
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++)
            {
                TVector product = one;
                for (int k = 0; k < factors; k++) product = TOps.Multiply(product, Factor<T, TVector, TOps>(state[k], i, j, k, one));
                res[i * n + j] = product;
            }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public unsafe void Backward<T, TVector, TOps>(TVector* logits, TVector* gradRes, TVector* gradLogits, TVector* state)
        where T : unmanaged, IFloatingPointIeee754<T> where TVector : unmanaged where TOps : struct, IVectorOps<TVector, T>
    {
        Probabilities<T, TVector, TOps>(logits, state);
        int n = N;
        var one = TOps.Broadcast(T.One);
        for (int k = 0; k < factors; k++)
        {
            TVector gp = TOps.Zero;
            for (int i = 0; i < n; i++)
                for (int j = 0; j < n; j++)
                {
                    TVector others = gradRes[i * n + j];
                    for (int m = 0; m < factors; m++)
                        if (m != k) others = TOps.Multiply(others, Factor<T, TVector, TOps>(state[m], i, j, m, one));
                    gp = Agree(i, j, k) ? TOps.Add(gp, others) : TOps.Subtract(gp, others);
                }
            var dz = TOps.Multiply(gp, TOps.Multiply(state[k], TOps.Subtract(one, state[k])));
            gradLogits[2 * k] = dz;
            gradLogits[2 * k + 1] = TOps.Subtract(TOps.Zero, dz);
        }
    }

    bool Agree(int i, int j, int k) => ((i >> (factors - 1 - k)) & 1) == ((j >> (factors - 1 - k)) & 1);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    TVector Factor<T, TVector, TOps>(TVector p, int i, int j, int k, TVector one)
        where T : unmanaged, IFloatingPointIeee754<T> where TVector : unmanaged where TOps : struct, IVectorOps<TVector, T> =>
        Agree(i, j, k) ? p : TOps.Subtract(one, p);

    unsafe void Probabilities<T, TVector, TOps>(TVector* logits, TVector* p)
        where T : unmanaged, IFloatingPointIeee754<T> where TVector : unmanaged where TOps : struct, IVectorOps<TVector, T>
    {
        for (int k = 0; k < factors; k++) // the softmax of two logits: the sigmoid of their difference
            p[k] = CpuLoops.Sigmoid<T, TVector, TOps>(TOps.Subtract(logits[2 * k], logits[2 * k + 1]));
    }
}
