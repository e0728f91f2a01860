namespace ResidualLab.Connections;

/// <summary>One option of a scheme: its config key, default and meaning.</summary>
/// <param name="Key">The option's key (<c>connection.KEY</c> in a config; the key of the options given to <see cref="ConnectionCatalog.Create"/>).</param>
/// <param name="Default">Its value when not given (bool, long, double or string).</param>
/// <param name="Description">What it sets.</param>
public sealed record SchemeOption(string Key, object Default, string Description);

/// <summary>How the catalog defines one scheme: its name, equation, options and how to build it.</summary>
/// <param name="Name">The scheme's name, as <see cref="ConnectionCatalog.Create"/> takes it.</param>
/// <param name="Description">Its update equation and paper, in one line.</param>
/// <param name="Options">The options it takes, with their defaults.</param>
/// <param name="Create">Builds the scheme from option values read through <see cref="SchemeOptions"/>.</param>
/// <param name="Aliases">Other names of the same scheme (a later paper's name for an equal update); they select this scheme.</param>
/// <param name="Refuses">Options other schemes take that contradict this one, each with why and what to use instead (e.g. a
/// norm for a scheme defined without norms); giving one is an error that says so.</param>
public sealed record SchemeDefinition(
    string Name,
    string Description,
    IReadOnlyList<SchemeOption> Options,
    Func<SchemeOptions, ConnectionScheme> Create,
    IReadOnlyList<string>? Aliases = null,
    IReadOnlyDictionary<string, string>? Refuses = null);

/// <summary>
/// The only list of connection schemes. Vocabulary: a <em>scheme</em> is a way of carrying the residual
/// stream past a sublayer, selected by <c>connection.name</c> and held, with its option values, as a
/// <see cref="ConnectionScheme"/> record (one file each); the catalog defines each by a <see cref="SchemeDefinition"/>;
/// a <see cref="Connection"/> is the module a scheme builds around one sublayer. A new scheme is one file plus
/// one definition here.
/// </summary>
public static class ConnectionCatalog
{
    /// <summary>Every scheme, in the order <c>reslab list connections</c> prints them.</summary>
    public static IReadOnlyList<SchemeDefinition> All { get; } =
    [
        new("none", "no residual: x = F(LN(x)); the stream is replaced",
            [new("norm", true, "normalise the sublayer's input (false: x = F(x))")],
            o => new NoResidualScheme(o.Bool("norm"))),
        new("pre-norm", "x = x + F(LN(x)) (GPT-2, Xiong et al. 2020)", [], _ => new PreNormScheme()),
        new("post-norm", "x = LN(x + F(x)) (Vaswani et al. 2017)", [], _ => new PostNormScheme()),
        new("sandwich", "x = x + LN2(F(LN1(x))) (CogView, Ding et al. 2021; also Peri-LN, Kim et al. 2025)", [], _ => new SandwichScheme(),
            Aliases: ["peri-ln"]),
        new("rezero", "x = x + a F(x), scalar a = 0 at init, no norm (Bachlechner et al. 2020)", [], _ => new ReZeroScheme()),
        new("skipinit", "x = x + a F(LN(x)), scalar a = 0 at init (De and Smith 2020)", [], _ => new SkipInitScheme()),
        new("layerscale", "x = x + diag(l) F(LN(x)), per-channel l small at init (CaiT, Touvron et al. 2021)",
            [new("init", LayerScaleScheme.DefaultInit, "initial value of every entry of l")],
            o => new LayerScaleScheme(o.Double("init"))),
        new("deepnorm", "x = LN(alpha x + F(x)), F's v/out/ffn weights x beta at init (DeepNet, Wang et al. 2022)", [],
            _ => new DeepNormScheme()),
        new("highway", "x = T F(LN(x)) + (1 - T) x, gate T = sigmoid(W LN(x) + b) (Srivastava et al. 2015)",
            [new("gate_bias", HighwayScheme.DefaultGateBias, "initial gate bias b (negative: start by carrying x)")],
            o => new HighwayScheme(o.Double("gate_bias"))),
        new("denseformer", "pre-norm reading a learned weighted average of all earlier streams, identity at init (Pagliardini et al. 2024)", [],
            _ => new DenseFormerScheme()),
        new("hyper-connections", "n streams mixed by learned read/residual/write weights, pre-norm at init (Zhu et al. 2024)",
            [
                new("n", (long)HyperConnectionsScheme.DefaultN, "expansion rate: number of residual streams"),
                new("dynamic", true, "add per-token (dynamic) weights to the static ones"),
            ],
            o => new HyperConnectionsScheme(o.Int("n"), o.Bool("dynamic"))),
        new("mhc", "n streams, doubly stochastic residual mixing by Sinkhorn-Knopp (mHC, Xie et al. 2025)",
            [
                new("n", (long)ManifoldHyperConnectionsScheme.DefaultN, "expansion rate: number of residual streams"),
                new("sinkhorn_iters", (long)Sinkhorn.DefaultIterations, "Sinkhorn-Knopp iterations t_max"),
                new("alpha_init", ManifoldHyperConnectionsScheme.DefaultAlphaInit, "initial gating factors alpha of the per-token maps"),
                new("res_diag", ManifoldHyperConnectionsScheme.DefaultResDiag, "initial diagonal of H_res's bias (0: uniform mixing; larger: closer to the identity)"),
                new("init", "stream", "read bias at init: stream (sublayer k reads stream k mod n, as HC) or uniform (the mean of the streams; they stay copies)"),
                new("write", "uniform", "write bias at init: uniform (H_post = 1 on every stream) or stream (sublayer k writes mostly to stream k mod n)"),
                new("stream_embed", false, "add a learned per-stream embedding, zero at init, to the expanded stream"),
            ],
            o => new ManifoldHyperConnectionsScheme(o.Int("n"), o.Int("sinkhorn_iters"),
                o.Double("alpha_init"), o.Double("res_diag"),
                o.String("init", "stream", "uniform") == "stream" ? MhcInit.Stream : MhcInit.Uniform,
                o.String("write", "uniform", "stream") == "stream" ? MhcWrite.Stream : MhcWrite.Uniform,
                o.Bool("stream_embed"))),
        new("residual", "x = x + F(x), no norm of its own (He et al. 2016, the ResNet's identity shortcut)", [], _ => new ResidualScheme()),
        new("layernorm-scaling", "x = x + F(LN(x) / sqrt(l)), l the 1-based layer (Sun et al. 2025, the curse of depth)", [],
            _ => new LayerNormScalingScheme()),
        new("mix-ln", "post-norm in the first floor(alpha L) layers, pre-norm after (Li et al. 2024)",
            [new("post_fraction", MixLnScheme.DefaultPostFraction, "alpha: the fraction of layers, from the input, that are post-norm")],
            o => new MixLnScheme(o.Double("post_fraction"))),
        new("orthogonal", "x = x + F_perp(LN(x)), only the part of F orthogonal to x (Oh et al. 2025)",
            [new("eps", OrthogonalScheme.DefaultEps, "added to <x, x> in the projection")],
            o => new OrthogonalScheme(o.Double("eps"))),
        new("completep", "x = x + (L / L_base)^(-alpha) F(LN(x)) (CompleteP, Dey et al. 2025; alpha = 0.5: depth-muP)",
            [
                new("alpha", 1.0, "depth exponent: 1 CompleteP, 0.5 depth-muP"),
                new("base_depth", 1L, "L_base: the depth at which the multiplier is 1"),
                new("lr_rule", true, "apply the paper's AdamW rule: block parameters' lr x m^(alpha-1), eps x m^(-alpha)"),
            ],
            o => new CompletePScheme(o.Double("alpha"), o.Int("base_depth"), o.Bool("lr_rule"))),
        new("laurel", "x = alpha F(LN(x)) + g(x, earlier x): rw beta x, lr x + B A x, pa x + sum gamma_j x_(i-j) (LAuReL, Menghani et al. 2024)",
            [
                new("variant", "rw", "rw (learned residual weight), lr (low-rank) or pa (previous activations)"),
                new("rank", (long)LaurelScheme.DefaultRank, "lr: the rank r of B A"),
                new("previous", (long)LaurelScheme.DefaultPrevious, "pa: how many earlier streams are added"),
            ],
            o => new LaurelScheme(o.String("variant"), o.Int("rank"), o.Int("previous"))),
        new("resi-dual", "post-norm stream x_a and dual stream x_d += F(x_a); output x_a + LN(x_d) (ResiDual, Xie et al. 2023)", [],
            _ => new ResiDualScheme()),
        new("mhc-lite", "mHC with H_res a convex combination of the n! permutation matrices: exactly doubly stochastic (Yang et al. 2026)",
            [
                new("n", (long)MhcLiteScheme.DefaultN, $"expansion rate: number of residual streams (at most {MhcLiteScheme.MaxN})"),
                new("res_gap", MhcLiteScheme.DefaultResGap, "initial logit of the identity above the other permutations'"),
            ],
            o => new MhcLiteScheme(o.Int("n"), o.Double("res_gap"))),
        new("kromhc", "mHC with H_res a Kronecker product of doubly stochastic 2 x 2 factors: exact (Wang et al. 2026)",
            [
                new("n", (long)KromHcScheme.DefaultN, "expansion rate: number of residual streams (a power of two)"),
                new("res_gap", MhcLiteScheme.DefaultResGap, "initial logit of each factor's identity above its swap's"),
            ],
            o => new KromHcScheme(o.Int("n"), o.Double("res_gap"))),
        new("frac-connections", "Hyper-Connections over m fractions of the hidden state: the width does not grow (Zhu et al. 2025)",
            [
                new("fracs", (long)FracConnectionsScheme.DefaultFracs, "m: number of fractions (must divide d_model)"),
                new("dynamic", true, "add per-token (dynamic) weights to the static ones"),
            ],
            o => new FracConnectionsScheme(o.Int("fracs"), o.Bool("dynamic"))),
        new("deep-delta", "x = (I - beta k k^T) x + beta v k, k the unit direction of F(LN(x)), beta in [0, 2] (Deep Delta Learning, Zhang et al. 2026)",
            [new("beta_init", 1.0, "initial gate beta (0 identity, 1 projection, 2 reflection)")],
            o => new DeepDeltaScheme(o.Double("beta_init"))),
        new("attn-res", "sublayer input = softmax(w_l . RMSNorm(v_i)) weighted sum of all earlier outputs v_i (Attention Residuals, Kimi Team 2026)",
            [new("blocks", 0L, "0: full (every earlier output); N > 0: block AttnRes over N block summaries")],
            o => new AttentionResidualsScheme(o.Int("blocks"))),
        new("admin", "x = LN(omega x + F(x)), omega profiled on the first batch to sqrt(sum of earlier branch variances) (Admin, Liu et al. 2020)", [],
            _ => new AdminScheme()),
        new("ngpt", "h = Norm(h + alpha (Norm(F(h)) - h)) on the unit sphere, unit-norm weights, no norms (nGPT, Loshchilov et al. 2024)",
            [
                new("alpha_init", NGptScheme.DefaultAlphaInit, "initial eigen learning rate alpha of every dimension"),
                new("alpha_scale", 0.0, "the scale alpha is stored at (its effective learning rate); 0: 1/sqrt(d_model)"),
            ],
            o => new NGptScheme(o.Double("alpha_init"), o.Double("alpha_scale"))),
        new("mudd", "separate per-token dense sums of all earlier layer outputs for the query, key, value and residual inputs (MUDDFormer, Xiao et al. 2025)",
            [], _ => new MuddScheme(), Aliases: ["muddformer"]),
        new("dca", "query, key and value from input-dependent per-dimension mixtures of all earlier layer outputs (DeepCrossAttention, Heddes et al. 2025)",
            [], _ => new DeepCrossAttentionScheme(), Aliases: ["deep-cross-attention"]),
        new("value-skipinit", "no skips; attention matrix alpha I + beta A, alpha = 1, beta = 0 trainable; orthogonal values, TAT MLP (Value-SkipInit, He et al. 2023)",
            [
                new("norm", true, "normalise each sublayer's input (false: the vanilla, norm-free model)"),
                new("per_head", false, "one alpha, beta pair per head (false: per layer)"),
                new("eta", Layers.TailoredActivation.DefaultEta, "TAT's target C_f(0) for the MLPs' leaky ReLU"),
            ],
            o => new ValueSkipInitScheme(o.Bool("norm"), o.Bool("per_head"), o.Double("eta"))),
        new("e-spa", "no skips, no norms; attention at init the Cholesky map of exponentially decaying kernels exp(-gamma_l |i - j|), TAT MLP (E-SPA, He et al. 2023)",
            [
                new("gamma", ESpaScheme.DefaultGamma, "the final kernel's decay gamma_L"),
                new("eta", Layers.TailoredActivation.DefaultEta, "TAT's target C_f(0) for the MLPs' leaky ReLU"),
            ],
            o => new ESpaScheme(o.Double("gamma"), o.Double("eta")), Refuses: VanillaRefuses("e-spa")),
        new("u-spa", "no skips, no norms; attention at init the Cholesky map of uniform kernels (1 - rho_l) I + rho_l 11^T, TAT MLP (U-SPA, He et al. 2023)",
            [
                new("rho", USpaScheme.DefaultRho, "the final kernel's correlation rho_L"),
                new("eta", Layers.TailoredActivation.DefaultEta, "TAT's target C_f(0) for the MLPs' leaky ReLU"),
            ],
            o => new USpaScheme(o.Double("rho"), o.Double("eta")), Refuses: VanillaRefuses("u-spa")),
        new("sas", "shaped attention alpha I + beta A - gamma C, no value/output projections, no attention skip, MLP skip kept (SAS, He and Hofmann 2024)",
            ShapedOptions(), o => new SasScheme(o.Bool("norm"), o.Double("mlp_gain"), o.Bool("first_value"), o.Bool("per_head"))),
        new("sas-p", "shaped attention and MLP in parallel on one norm, no value/output projections, no skips (SAS-P, He and Hofmann 2024)",
            ShapedOptions(), o => new SasPScheme(o.Bool("norm"), o.Double("mlp_gain"), o.Bool("first_value"), o.Bool("per_head"))),
    ];

    /// <summary>What a vanilla Transformer (no skips, no norms) refuses.</summary>
    static Dictionary<string, string> VanillaRefuses(string name) => new()
    {
        ["norm"] = $"{name} is a vanilla Transformer, defined without normalisation in its blocks (He et al. 2023); remove connection.norm, or use value-skipinit, which takes norm",
    };

    static SchemeOption[] ShapedOptions() =>
    [
        new("norm", true, "RMSNorm before the sublayers (false: none, but a LayerNorm on block 0's attention input)"),
        new("mlp_gain", 0.0, "beta_FF, the MLP branch's gain at init; 0: 0.1 sqrt(18 / n_layer)"),
        new("first_value", true, "block 0's value is I + a learned matrix (zero at init) instead of the identity"),
        new("per_head", true, "alpha, beta, gamma per head (false: per layer)"),
    ];

    /// <summary>The names of every scheme.</summary>
    public static IEnumerable<string> Names => All.Select(e => e.Name);

    /// <summary>The scheme named <paramref name="name"/> or one of its aliases, ignoring case; null when there is none.</summary>
    public static SchemeDefinition? Find(string name) =>
        All.FirstOrDefault(e => string.Equals(e.Name, name, StringComparison.OrdinalIgnoreCase)
            || (e.Aliases ?? []).Any(a => string.Equals(a, name, StringComparison.OrdinalIgnoreCase)));

    /// <summary>
    /// The scheme <paramref name="name"/> with <paramref name="options"/> (key to bool, long, double or
    /// string; omitted keys take their defaults), e.g. <c>Create("mhc", new Dictionary&lt;string, object&gt; { ["n"] = 4L })</c>.
    /// In code, the scheme's record says the same with types: <c>new ManifoldHyperConnectionsScheme(N: 4)</c>.
    /// </summary>
    /// <exception cref="ArgumentException">An unknown name (<see cref="ArgumentException.ParamName"/> "name"), or an option the
    /// scheme does not take, of the wrong type or out of range (<see cref="ArgumentException.ParamName"/>: the option's key);
    /// the message names the scheme, the option and what it takes.</exception>
    public static ConnectionScheme Create(string name, IReadOnlyDictionary<string, object>? options = null)
    {
        var definition = Find(name) ?? throw new ArgumentException(
            $"unknown connection scheme '{name}'{Suggest.DidYouMean(name, Names.Concat(All.SelectMany(e => e.Aliases ?? [])))}; the schemes: {string.Join(", ", Names)}",
            nameof(name));
        var reader = new SchemeOptions(definition, options ?? new Dictionary<string, object>());
        var scheme = definition.Create(reader);
        reader.ThrowOnUnused();
        return scheme;
    }
}

/// <summary>Typed access to a scheme's options as a config gives them, with the scheme's defaults; remembers what was read.
/// It converts types only: each scheme's record checks its own ranges.</summary>
/// <param name="definition">The scheme whose options these are.</param>
/// <param name="raw">The values given, by key; a key not given reads as the option's default.</param>
public sealed class SchemeOptions(SchemeDefinition definition, IReadOnlyDictionary<string, object> raw)
{
    readonly HashSet<string> _used = [];

    object Get(string key)
    {
        var option = definition.Options.FirstOrDefault(o => o.Key == key)
            ?? throw new InvalidOperationException($"scheme '{definition.Name}' reads undeclared option '{key}'");
        _used.Add(key);
        return raw.TryGetValue(key, out var v) ? v : option.Default;
    }

    ArgumentException Wrong(string key, string expected, object value) =>
        new($"{definition.Name}: {key} must be {expected}, got '{value}'", key);

    /// <summary>The option <paramref name="key"/> as a bool.</summary>
    /// <exception cref="ArgumentException">The value is not a bool.</exception>
    public bool Bool(string key) => Get(key) switch
    {
        bool b => b,
        var v => throw Wrong(key, "true or false", v),
    };

    /// <summary>The option <paramref name="key"/> as an integer.</summary>
    /// <exception cref="ArgumentException">The value is not an integer of 32 bits.</exception>
    public int Int(string key) => Get(key) switch
    {
        int i => i,
        long l when l is >= int.MinValue and <= int.MaxValue => (int)l,
        double d when d == Math.Floor(d) && d is >= int.MinValue and <= int.MaxValue => (int)d,
        var v => throw Wrong(key, "an integer", v),
    };

    /// <summary>The option <paramref name="key"/> as a number.</summary>
    /// <exception cref="ArgumentException">The value is not a number.</exception>
    public double Double(string key) => Get(key) switch
    {
        double d => d,
        long l => l,
        int i => i,
        var v => throw Wrong(key, "a number", v),
    };

    /// <summary>The option <paramref name="key"/> as a string, one of <paramref name="allowed"/> when any are given.</summary>
    /// <exception cref="ArgumentException">The value is not a string or not allowed.</exception>
    public string String(string key, params string[] allowed)
    {
        var raw = Get(key);
        string value = raw as string ?? throw Wrong(key, "a string", raw);
        if (allowed.Length > 0 && !allowed.Contains(value)) throw Wrong(key, $"one of {string.Join(", ", allowed)}", value);
        return value;
    }

    internal void ThrowOnUnused()
    {
        foreach (var key in raw.Keys)
        {
            if (_used.Contains(key)) continue;
            if (definition.Refuses?.TryGetValue(key, out var why) == true)
                throw new ArgumentException($"option '{key}' contradicts '{definition.Name}': {why}", key);
            var valid = definition.Options.Select(o => o.Key).ToList();
            string takes = valid.Count == 0 ? "it takes no options" : $"it takes: {string.Join(", ", valid)}";
            throw new ArgumentException($"option '{key}' does not apply to '{definition.Name}'{Suggest.DidYouMean(key, valid)}; {takes}", key);
        }
    }
}
