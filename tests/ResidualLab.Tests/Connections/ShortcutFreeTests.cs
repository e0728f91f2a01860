using ResidualLab.Connections;
using ResidualLab.Families;
using ResidualLab.Hooks;
using ResidualLab.Layers;
using ResidualLab.Models;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace ResidualLab.Tests.Connections;

/// <summary>
/// The shortcut-free Transformers at init, against their definitions: every layer's attention matrix is the prescribed one
/// (the identity for Value-SkipInit, SAS and SAS-P; A_l = chol(Sigma_l) chol(Sigma_(l-1))^-1 for E-SPA and U-SPA, computed
/// here from the target kernels by a Cholesky factorisation of the test's own), the attention sublayer maps the token kernel
/// exactly as A (.) A^T, and after L layers the token cosines follow the kernel the method targets, within the finite-width
/// tolerances the spec derived from simulation (E-SPA, U-SPA: 0.02 on the mean, 0.05 entrywise; Value-SkipInit: 0.03 on the
/// mean; SAS, SAS-P: 0.01 mean and 0.03 largest deviation from the input's cosines).
/// </summary>
[Collection(ConnectionsCollection.Name)]
[Trait(Slow.Category, Slow.Value)]
public class ShortcutFreeTests(ITestOutputHelper output)
{
    const int Length = 32, Vocab = 13;

    static Gpt Model(ConnectionScheme scheme, int layers, int width = 32, int heads = 4, int seed = 11)
    {
        manual_seed(seed);
        var model = new Gpt(new GptConfig(Vocab, NLayer: layers, DModel: width, NHead: heads, BlockSize: Length), scheme);
        model.eval();
        return model;
    }

    static Tensor Tokens(int batch, int length = Length)
    {
        manual_seed(3);
        return randint(0, Vocab, [batch, length]);
    }

    public static TheoryData<string, int> SchemesAndDepths()
    {
        var data = new TheoryData<string, int>();
        foreach (var name in new[] { "value-skipinit", "e-spa", "u-spa", "sas", "sas-p" })
            foreach (int depth in new[] { 6, 24 }) data.Add(name, depth);
        return data;
    }

    [Theory]
    [MemberData(nameof(SchemesAndDepths))]
    public void At_init_every_layer_applies_the_prescribed_attention_matrix(string name, int depth)
    {
        var scheme = ConnectionCatalog.Create(name);
        using var model = Model(scheme, depth);
        double worst = 0;
        foreach (int length in new[] { Length, 17 }) // built at the block size, sliced for shorter sequences
        {
            using var scope = NewDisposeScope();
            var patterns = model.AttentionPatterns(Tokens(2, length));
            for (int l = 0; l < depth; l++)
            {
                var expected = tensor(Flatten(Prescribed(scheme, l + 1, depth, length)), [length, length], ScalarType.Float64);
                worst = Math.Max(worst, (patterns[l].to(ScalarType.Float64) - expected).abs().max().item<double>());
            }
        }
        output.WriteLine($"{name} L={depth}: max |A_model - A_prescribed| over layers, heads, batch and lengths {Length}, 17: {worst:0.0e+0}");
        Assert.True(worst <= 1e-6, $"{name} L={depth}: {worst}");
    }

    [Fact]
    public void The_plain_attention_pattern_is_causal_and_row_stochastic()
    {
        using var model = Model(new PreNormScheme(), 2);
        foreach (var pattern in model.AttentionPatterns(Tokens(2)))
        {
            Assert.Equal(0, pattern.triu(1).abs().max().item<float>());
            Assert.Equal(0, (pattern.sum(-1) - 1).abs().max().item<float>(), 5);
        }
    }

    [Theory]
    [InlineData("value-skipinit")]
    [InlineData("e-spa")]
    [InlineData("u-spa")]
    [InlineData("sas")]
    [InlineData("sas-p")]
    public void The_attention_sublayer_maps_the_token_kernel_exactly_as_its_matrix(string name)
    {
        // Orthogonal (or identity) value and output projections keep X X^T: the attention's output Gram is A Gram(input) A^T.
        const int depth = 6, width = 64;
        var scheme = ConnectionCatalog.Create(name);
        using var model = Model(scheme, depth, width);
        var outputs = new List<Tensor>();
        var branches = new List<(Connection Connection, Branch Branch)>();
        using var _ = no_grad();
        model.Forward(Tokens(2), new HookSet().Add(n => n.EndsWith("hook_attn_out", StringComparison.Ordinal), (_, y) =>
        {
            outputs.Add(y);
            return y;
        }), branches: branches);
        double worst = 0;
        for (int l = 0; l < depth; l++)
        {
            var a = tensor(Flatten(Prescribed(scheme, l + 1, depth, Length)), [Length, Length], ScalarType.Float64);
            var input = branches[2 * l].Branch.Input.to(ScalarType.Float64);
            var y = outputs[l].to(ScalarType.Float64);
            var expected = a.matmul(input.matmul(input.transpose(1, 2))).matmul(a.T);
            var gram = y.matmul(y.transpose(1, 2));
            worst = Math.Max(worst, ((gram - expected).abs().max() / expected.abs().max()).item<double>());
        }
        output.WriteLine($"{name}: max |Gram(out) - A Gram(in) A^T| / max |A Gram(in) A^T| over {depth} layers: {worst:0.0e+0}");
        Assert.True(worst <= 1e-4, $"{name}: {worst}");
    }

    [Theory]
    [MemberData(nameof(SchemesAndDepths))]
    public void At_init_token_cosines_after_L_layers_follow_the_target_kernel(string name, int depth)
    {
        // The kernel theory predicts the expectation over the weights: one model's cosines move with its own draw of the MLPs'
        // orthogonal matrices (by about 0.04 on the mean for Value-SkipInit at d = 128), so the prediction is checked on the
        // mean over eight models (seeds) of four sequences each.
        const int width = 128, batch = 4, models = 8;
        var scheme = ConnectionCatalog.Create(name);
        double slope = TailoredActivation.ForChain(depth, TailoredActivation.DefaultEta).NegativeSlope;
        var attention = scheme is SignalPreservingScheme spa ? Enumerable.Range(1, depth).Select(l => Prescribed(spa, l, depth, Length)).ToList() : [];
        var measured = new double[Length, Length];
        var predicted = new double[Length, Length];
        double largest = 0, meanAbs = 0; // per sequence: the largest and the mean |cos_L - expected| over pairs
        for (int seed = 1; seed <= models; seed++)
        {
            using var scope = NewDisposeScope();
            using var model = Model(scheme, depth, width, seed: seed);
            var x0 = randn(batch, Length, width);              // i.i.d. N(0, 1) rows as block 0's input: Sigma_0 ~ I
            Tensor? last = null;
            using (no_grad())
                model.Forward(Tokens(batch), new HookSet()
                    .Add(HookNames.ResidPre(0), (_, _) => x0)
                    .Add(HookNames.ResidPost(depth - 1), (_, h) => last = h.clone()));
            var cos = Cosines(last!);
            var input = Cosines(x0);
            var centred = Cosines(x0 - x0.mean([-1], keepdim: true));
            for (int b = 0; b < batch; b++)
            {
                var expected = scheme switch
                {
                    // the kernel recursion from the sequence's measured input Gram
                    SignalPreservingScheme => CosOf(Recursion(Gram(x0[b]), attention, slope)),
                    // identity attention and orthogonal W^V W^O: only the L MLPs move the cosines, each by TAT's C map; the first
                    // norm centres the input (LayerNorm), so the prediction starts from the centred input's cosines
                    ValueSkipInitScheme => Map(centred[b], c => Compose(c, depth, slope)),
                    // SAS, SAS-P: the attention is the identity on the normed input (an RMSNorm keeps cosines) and the small
                    // beta_FF MLP barely moves them
                    _ => input[b],
                };
                largest = Math.Max(largest, MaxAbsDiff(cos[b], expected));
                meanAbs += MeanAbsOffDiagonal(cos[b], expected) / (models * batch);
                Accumulate(measured, cos[b], 1.0 / (models * batch));
                Accumulate(predicted, expected, 1.0 / (models * batch));
            }
        }
        double mean = MeanOffDiagonal(measured), entrywise = MaxAbsDiff(measured, predicted);
        switch (scheme)
        {
            case SignalPreservingScheme:
                double target = MeanOffDiagonal(CosOf(Recursion(Identity(Length), attention, slope)));
                output.WriteLine($"{name} L={depth}: mean off-diagonal cos {mean:0.0000} (target from Sigma_0 = I {target:0.0000}); max entrywise |mean cos - mean recursion from the measured inputs| {entrywise:0.0000}");
                Assert.True(Math.Abs(mean - target) <= 0.02, $"{name} L={depth}: mean {mean} vs {target}");
                Assert.True(entrywise <= 0.05, $"{name} L={depth}: entrywise {entrywise}");
                break;
            case ValueSkipInitScheme:
                double prediction = MeanOffDiagonal(predicted);
                output.WriteLine($"{name} L={depth}: mean off-diagonal cos {mean:0.0000}, predicted C^L(c_0) {prediction:0.0000} (from c_0 = 0: {Compose(0, depth, slope):0.0000})");
                Assert.True(Math.Abs(mean - prediction) <= 0.03, $"{name} L={depth}: {mean} vs {prediction}");
                break;
            default:
                output.WriteLine($"{name} L={depth}: |cos_L - cos(N(X_0))| mean over pairs {meanAbs:0.0e+0}, largest of any pair {largest:0.0e+0}");
                Assert.True(meanAbs <= 0.01 && largest <= 0.03, $"{name} L={depth}: mean {meanAbs}, max {largest}");
                break;
        }
    }

    static void Accumulate(double[,] sum, double[,] x, double weight)
    {
        for (int i = 0; i < sum.GetLength(0); i++)
            for (int j = 0; j < sum.GetLength(1); j++) sum[i, j] += weight * x[i, j];
    }

    [Fact]
    public void E_spa_matrices_have_the_closed_form_the_cholesky_construction_gives()
    {
        // T = 4, L = 2, gamma_L = 0.005 (the spec's worked example); then T = 64, L = 24: positive lower triangle, the same
        // self-weight in every layer, and the product of the layers' matrices equal to the Cholesky factor of the final target.
        var espa = new ESpaScheme();
        double[][] a1 = [[1], [0.948815, 0.315833], [0.900249, 0.299667, 0.315833], [0.854170, 0.284329, 0.299667, 0.315833]];
        double[][] a2 = [[1], [0.695345, 0.315833], [0.691877, 0.014591, 0.315833], [0.688427, 0.014518, 0.014591, 0.315833]];
        foreach (var (layer, rows) in new[] { (1, a1), (2, a2) })
        {
            var matrix = espa.Prior(layer, 2).Matrix(4);
            for (int t = 0; t < 4; t++)
                for (int s = 0; s <= t; s++)
                    Assert.Equal(rows[t][s], matrix[t, s].item<double>(), 6);
        }
        const int depth = 24, length = 64;
        var product = eye(length, dtype: ScalarType.Float64);
        double diagonal = Math.Pow(1 - Math.Exp(-2 * ESpaScheme.DefaultGamma), 1.0 / (2 * depth));
        for (int l = 1; l <= depth; l++)
        {
            var closed = espa.Prior(l, depth).Matrix(length);
            var cholesky = tensor(Flatten(Prescribed(espa, l, depth, length)), [length, length], ScalarType.Float64);
            Assert.True((closed - cholesky).abs().max().item<double>() < 1e-12);
            Assert.True(closed.tril().masked_select(ones(length, length, dtype: ScalarType.Bool).tril()).min().item<double>() > 0);
            Assert.Equal(diagonal, closed[length - 1, length - 1].item<double>(), 12);
            Assert.True((espa.Prior(l, depth).Log(length).exp() - closed).abs().max().item<double>() < 1e-14);
            product = closed.matmul(product);
        }
        var final = tensor(Flatten(Cholesky(Kernel(espa, depth, depth, length))), [length, length], ScalarType.Float64);
        Assert.True((product - final).abs().max().item<double>() < 1e-12);
    }

    [Fact]
    public void A_parallel_sublayer_reads_the_layer_input_and_adds_into_the_stream_the_previous_one_left()
    {
        // Through the one driver: pre-norm connections around two sublayers in parallel give GPT-J's x + f(LN1 x) + g(LN2 x).
        const int width = 8;
        manual_seed(5);
        var scheme = new PreNormScheme();
        using var f = new TinySublayer(width);
        using var g = new TinySublayer(width);
        var first = scheme.Build(new ConnectionSite(width, 0, 2, () => nn.LayerNorm(width), SublayersPerLayer: 2));
        var second = scheme.Build(new ConnectionSite(width, 1, 2, () => nn.LayerNorm(width), SublayersPerLayer: 2));
        var x = randn(2, 5, width);
        using var _ = no_grad();
        var pass = new ResidualPass(scheme, x, sublayerCount: 2, sublayersPerLayer: 2);
        pass.Step(first, b => f.call(b.Input));
        pass.Step(second, b => g.call(b.Input), parallel: true);
        var normed = nn.functional.layer_norm(x, [width]);
        Assert.Equal(0, (pass.Finish() - (x + f.call(normed) + g.call(normed))).abs().max().item<float>(), 6);

        var again = new ResidualPass(scheme, x, sublayerCount: 2, sublayersPerLayer: 2);
        var ex = Assert.Throws<InvalidOperationException>(() => again.Step(first, b => f.call(b.Input), parallel: true));
        Assert.Contains("first of its layer", ex.Message);
    }

    [Fact]
    public void A_sas_p_block_adds_its_attention_and_mlp_both_computed_from_the_block_input()
    {
        const int depth = 3;
        using var model = Model(new SasPScheme(), depth);
        manual_seed(9);
        using (no_grad()) foreach (var p in model.parameters()) p.add_(randn_like(p) * 0.05); // off the init, so the branches differ
        var cache = new ActivationCache();
        var branches = new List<(Connection Connection, Branch Branch)>();
        using var _ = no_grad();
        model.Forward(Tokens(2), new HookSet().Cache(cache), branches: branches);
        for (int l = 0; l < depth; l++)
        {
            // the MLP read the attention's normed input (one shared norm), not the stream after the attention
            Assert.True(ReferenceEquals(branches[2 * l].Branch.Input, branches[2 * l + 1].Branch.Input));
            float betaSa = model.named_parameters().Single(p => p.name == $"h.{l}.conn_attn.gain").parameter.item<float>();
            float betaFf = model.named_parameters().Single(p => p.name == $"h.{l}.conn_mlp.gain").parameter.item<float>();
            var expected = cache[HookNames.AttnOut(l)] * betaSa + cache[HookNames.MlpOut(l)] * betaFf;
            Assert.Equal(0, (cache[HookNames.ResidPost(l)] - expected).abs().max().item<float>(), 5);
        }
    }

    [Fact]
    public void Models_without_shaped_sublayers_refuse_the_schemes_in_one_line_naming_what_to_use()
    {
        foreach (var scheme in new ConnectionScheme[] { new ValueSkipInitScheme(), new ESpaScheme(), new USpaScheme(), new SasScheme(), new SasPScheme() })
        {
            var ex = Assert.Throws<ArgumentException>(() => new ResidualStack(scheme, 8, [new TinySublayer(8)]));
            Assert.DoesNotContain('\n', ex.Message);
            Assert.Contains($"scheme '{scheme.Name}' needs", ex.Message);
            Assert.Contains("'none' or 'pre-norm'", ex.Message);
            Assert.Contains("use it with model.name=gpt", ImageClassifierFamily.SchemeProblem(scheme));
        }
    }

    // ---- the reference: target kernels, their Cholesky factors and the kernel recursion, in plain float64 arrays

    /// <summary>The attention matrix layer <paramref name="layer"/> of <paramref name="depth"/> prescribes at init, from the definition.</summary>
    static double[,] Prescribed(ConnectionScheme scheme, int layer, int depth, int length) => scheme switch
    {
        SignalPreservingScheme spa => Multiply(Cholesky(Kernel(spa, layer, depth, length)), LowerInverse(Cholesky(Kernel(spa, layer - 1, depth, length)))),
        _ => Identity(length),
    };

    /// <summary>Sigma_l written from the schedules' definitions (not the schemes' code).</summary>
    static double[,] Kernel(SignalPreservingScheme scheme, int layer, int depth, int length)
    {
        var k = new double[length, length];
        for (int t = 0; t < length; t++)
            for (int s = 0; s < length; s++)
                k[t, s] = t == s ? 1 : layer == 0 ? 0 : scheme switch
                {
                    // 1 - exp(-2 gamma_l) = (1 - exp(-2 gamma_L))^(l / L): exp(-gamma_l) = sqrt(1 - (1 - exp(-2 gamma_L))^(l / L))
                    ESpaScheme e => Math.Pow(Math.Sqrt(1 - Math.Pow(1 - Math.Exp(-2 * e.Gamma), (double)layer / depth)), Math.Abs(t - s)),
                    USpaScheme u => 1 - Math.Pow(1 - u.Rho, (double)layer / depth),
                    _ => throw new ArgumentException(scheme.Name),
                };
        return k;
    }

    static double[,] Cholesky(double[,] s)
    {
        int n = s.GetLength(0);
        var l = new double[n, n];
        for (int i = 0; i < n; i++)
            for (int j = 0; j <= i; j++)
            {
                double v = s[i, j];
                for (int k = 0; k < j; k++) v -= l[i, k] * l[j, k];
                l[i, j] = i == j ? Math.Sqrt(v) : v / l[j, j];
            }
        return l;
    }

    static double[,] LowerInverse(double[,] l)
    {
        int n = l.GetLength(0);
        var inv = new double[n, n];
        for (int j = 0; j < n; j++)
        {
            inv[j, j] = 1 / l[j, j];
            for (int i = j + 1; i < n; i++)
            {
                double v = 0;
                for (int k = j; k < i; k++) v += l[i, k] * inv[k, j];
                inv[i, j] = -v / l[i, i];
            }
        }
        return inv;
    }

    static double[,] Multiply(double[,] a, double[,] b)
    {
        int n = a.GetLength(0), m = b.GetLength(1), inner = a.GetLength(1);
        var c = new double[n, m];
        for (int i = 0; i < n; i++)
            for (int j = 0; j < m; j++)
            {
                double v = 0;
                for (int k = 0; k < inner; k++) v += a[i, k] * b[k, j];
                c[i, j] = v;
            }
        return c;
    }

    static double[,] Transpose(double[,] a) => Map(a, (i, j) => a[j, i]);

    static double[,] Identity(int n) => Map(new double[n, n], (i, j) => i == j ? 1 : 0);

    static double[,] Map(double[,] a, Func<int, int, double> f)
    {
        var c = new double[a.GetLength(0), a.GetLength(1)];
        for (int i = 0; i < c.GetLength(0); i++)
            for (int j = 0; j < c.GetLength(1); j++) c[i, j] = f(i, j);
        return c;
    }

    static double[,] Map(double[,] a, Func<double, double> f) => Map(a, (i, j) => i == j ? a[i, j] : f(a[i, j]));

    /// <summary>Per block: Sigma &lt;- A Sigma A^T (attention, orthogonal V/O), then Sigma_ij &lt;- sqrt(Sigma_ii Sigma_jj) C_s(cos_ij) (TAT MLP, SUO weights).</summary>
    static double[,] Recursion(double[,] sigma, IReadOnlyList<double[,]> attention, double slope)
    {
        foreach (var a in attention)
        {
            var mixed = Multiply(Multiply(a, sigma), Transpose(a));
            sigma = Map(mixed, (i, j) =>
            {
                double q = Math.Sqrt(mixed[i, i] * mixed[j, j]);
                return q * TailoredActivation.LeakyReluCMap(mixed[i, j] / q, slope);
            });
        }
        return sigma;
    }

    static double Compose(double c, int layers, double slope)
    {
        for (int i = 0; i < layers; i++) c = TailoredActivation.LeakyReluCMap(c, slope);
        return c;
    }

    static double[,] CosOf(double[,] k) => Map(k, (i, j) => k[i, j] / Math.Sqrt(k[i, i] * k[j, j]));

    static double[,] Gram(Tensor x)
    {
        var g = x.to(ScalarType.Float64).matmul(x.to(ScalarType.Float64).T) / x.shape[1];
        return ToArray(g);
    }

    /// <summary>Per sequence, the cosines between its tokens' representations, [b][t, t].</summary>
    static double[][,] Cosines(Tensor x)
    {
        var unit = nn.functional.normalize(x.to(ScalarType.Float64), p: 2, dim: -1);
        var cos = unit.matmul(unit.transpose(1, 2));
        return Enumerable.Range(0, (int)x.shape[0]).Select(b => ToArray(cos[b])).ToArray();
    }

    static double[,] ToArray(Tensor m)
    {
        int n = (int)m.shape[0], k = (int)m.shape[1];
        var values = m.contiguous().data<double>().ToArray();
        return Map(new double[n, k], (i, j) => values[i * k + j]);
    }

    static double[] Flatten(double[,] a) => a.Cast<double>().ToArray();

    static double MaxAbsDiff(double[,] a, double[,] b) => Flatten(Map(a, (i, j) => Math.Abs(a[i, j] - b[i, j]))).Max();

    static IEnumerable<(int I, int J)> OffDiagonal(int n) =>
        from i in Enumerable.Range(0, n) from j in Enumerable.Range(0, n) where i != j select (i, j);

    static double MeanOffDiagonal(double[,] c) => OffDiagonal(c.GetLength(0)).Average(p => c[p.I, p.J]);

    static double MeanAbsOffDiagonal(double[,] a, double[,] b) => OffDiagonal(a.GetLength(0)).Average(p => Math.Abs(a[p.I, p.J] - b[p.I, p.J]));
}
