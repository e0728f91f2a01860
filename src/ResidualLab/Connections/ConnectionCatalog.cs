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
/// <param name="OnResNet">What training the CIFAR ResNet with it showed, in one line (the README's table 'Schemes on the ResNet' has the numbers).</param>
public sealed record SchemeDefinition(
    string Name,
    string Description,
    IReadOnlyList<SchemeOption> Options,
    Func<SchemeOptions, ConnectionScheme> Create,
    IReadOnlyList<string>? Aliases = null,
    string OnResNet = "");

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
            o => new NoResidualScheme(o.Bool("norm")),
            OnResNet: "plain block relu(F(BN x)); trains at lr 0.1 (ResNet-8, 40 steps: loss 1.80; residual 1.71)"),
        new("pre-norm", "x = x + F(LN(x)) (GPT-2, Xiong et al. 2020)", [], _ => new PreNormScheme(),
            OnResNet: "adds a BN before the branch; trains at lr 0.1 (ResNet-8, 40 steps: loss 1.73)"),
        new("post-norm", "x = LN(x + F(x)) (Vaswani et al. 2017)", [], _ => new PostNormScheme(),
            OnResNet: "BN after the sum; trains at lr 0.1 (ResNet-8, 40 steps: loss 1.71)"),
        new("sandwich", "x = x + LN2(F(LN1(x))) (CogView, Ding et al. 2021; also Peri-LN, Kim et al. 2025)", [], _ => new SandwichScheme(),
            Aliases: ["peri-ln"],
            OnResNet: "BNs before and after the branch; trains at lr 0.1 (ResNet-8, 40 steps: loss 1.73)"),
        new("rezero", "x = x + a F(x), scalar a = 0 at init, no norm (Bachlechner et al. 2020)", [], _ => new ReZeroScheme(),
            OnResNet: "gain a = 0 at init; trains at lr 0.1 (ResNet-8, 40 steps: loss 1.82)"),
        new("skipinit", "x = x + a F(LN(x)), scalar a = 0 at init (De and Smith 2020)", [], _ => new SkipInitScheme(),
            OnResNet: "gain a = 0 at init; trains at lr 0.1 (ResNet-8, 40 steps: loss 1.82)"),
        new("layerscale", "x = x + diag(l) F(LN(x)), per-channel l small at init (CaiT, Touvron et al. 2021)",
            [new("init", LayerScaleScheme.DefaultInit, "initial value of every entry of l")],
            o => new LayerScaleScheme(o.Double("init", 0, 10)),
            OnResNet: "l = 0.1 at init; trains at lr 0.1 (ResNet-8, 40 steps: loss 1.81)"),
        new("deepnorm", "x = LN(alpha x + F(x)), F's v/out/ffn weights x beta at init (DeepNet, Wang et al. 2022)", [],
            _ => new DeepNormScheme(),
            OnResNet: "alpha, beta from the blocks of the stage; trains at lr 0.1 (ResNet-8, 40 steps: loss 1.72)"),
        new("highway", "x = T F(LN(x)) + (1 - T) x, gate T = sigmoid(W LN(x) + b) (Srivastava et al. 2015)",
            [new("gate_bias", HighwayScheme.DefaultGateBias, "initial gate bias b (negative: start by carrying x)")],
            o => new HighwayScheme(o.Double("gate_bias", -100, 100)),
            OnResNet: "gate starts carrying x (T = 0.12); trains at lr 0.1 (ResNet-8, 40 steps: loss 1.90)"),
        new("denseformer", "pre-norm reading a learned weighted average of all earlier streams, identity at init (Pagliardini et al. 2024)", [],
            _ => new DenseFormerScheme(),
            OnResNet: "trains at lr 0.1 (ResNet-8, 40 steps: loss 1.73)"),
        new("hyper-connections", "n streams mixed by learned read/residual/write weights, pre-norm at init (Zhu et al. 2024)",
            [
                new("n", (long)HyperConnectionsScheme.DefaultN, "expansion rate: number of residual streams"),
                new("dynamic", true, "add per-token (dynamic) weights to the static ones"),
            ],
            o => new HyperConnectionsScheme((int)o.Int("n", 1, 64), o.Bool("dynamic")),
            OnResNet: "streams reduced to their mean per stage (their sum blew up); trains at lr 0.1 (ResNet-8, 40 steps: loss 1.73)"),
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
            o => new ManifoldHyperConnectionsScheme((int)o.Int("n", 1, 64), (int)o.Int("sinkhorn_iters", 1, 10000),
                o.Double("alpha_init", 0, 100), o.Double("res_diag", -100, 100),
                o.String("init", "stream", "uniform") == "stream" ? MhcInit.Stream : MhcInit.Uniform,
                o.String("write", "uniform", "stream") == "stream" ? MhcWrite.Stream : MhcWrite.Uniform,
                o.Bool("stream_embed")),
            OnResNet: "streams reduced to their mean per stage (their sum blew up); trains at lr 0.1 (ResNet-8, 40 steps: loss 1.85)"),
        new("residual", "x = x + F(x), no norm of its own (He et al. 2016, the ResNet's identity shortcut)", [], _ => new ResidualScheme(),
            OnResNet: "the paper's ResNet; trains at lr 0.1 (ResNet-8, 40 steps: loss 1.71 seed 1, 1.35 seed 2)"),
        new("layernorm-scaling", "x = x + F(LN(x) / sqrt(l)), l the 1-based layer (Sun et al. 2025, the curse of depth)", [],
            _ => new LayerNormScalingScheme(),
            OnResNet: "l counts the blocks of a stage (pre-norm at depth 8); trains at lr 0.1 (ResNet-8, 40 steps: loss 1.73)"),
        new("mix-ln", "post-norm in the first floor(alpha L) layers, pre-norm after (Li et al. 2024)",
            [new("post_fraction", MixLnScheme.DefaultPostFraction, "alpha: the fraction of layers, from the input, that are post-norm")],
            o => new MixLnScheme(o.Double("post_fraction", 0, 1)),
            OnResNet: "the fraction is of a stage's blocks (pre-norm at depth 8); trains at lr 0.1 (ResNet-8, 40 steps: loss 1.73)"),
        new("orthogonal", "x = x + F_perp(LN(x)), only the part of F orthogonal to x (Oh et al. 2025)",
            [new("eps", OrthogonalScheme.DefaultEps, "added to <x, x> in the projection")],
            o => new OrthogonalScheme(o.Double("eps", 0, 1)),
            OnResNet: "projection per pixel over channels; trains at lr 0.1 (ResNet-8, 40 steps: loss 1.78)"),
        new("completep", "x = x + (L / L_base)^(-alpha) F(LN(x)) (CompleteP, Dey et al. 2025; alpha = 0.5: depth-muP)",
            [
                new("alpha", 1.0, "depth exponent: 1 CompleteP, 0.5 depth-muP"),
                new("base_depth", 1L, "L_base: the depth at which the multiplier is 1"),
                new("lr_rule", true, "apply the paper's AdamW rule: block parameters' lr x m^(alpha-1), eps x m^(-alpha)"),
            ],
            o => new CompletePScheme(o.Double("alpha", 0, 2), (int)o.Int("base_depth", 1, 10000), o.Bool("lr_rule")),
            OnResNet: "L = blocks of the stage (pre-norm at depth 8); trains at lr 0.1 (ResNet-8, 40 steps: loss 1.73)"),
        new("laurel", "x = alpha F(LN(x)) + g(x, earlier x): rw beta x, lr x + B A x, pa x + sum gamma_j x_(i-j) (LAuReL, Menghani et al. 2024)",
            [
                new("variant", "rw", "rw (learned residual weight), lr (low-rank) or pa (previous activations)"),
                new("rank", (long)LaurelScheme.DefaultRank, "lr: the rank r of B A"),
                new("previous", (long)LaurelScheme.DefaultPrevious, "pa: how many earlier streams are added"),
            ],
            o => new LaurelScheme(o.String("variant", LaurelScheme.Variants), (int)o.Int("rank", 1, 4096), (int)o.Int("previous", 1, 1024)),
            OnResNet: "trains at lr 0.1 (ResNet-8, 40 steps: loss 1.73)"),
        new("resi-dual", "post-norm stream x_a and dual stream x_d += F(x_a); output x_a + LN(x_d) (ResiDual, Xie et al. 2023)", [],
            _ => new ResiDualScheme(),
            OnResNet: "two streams per stage, reduced to their mean; trains at lr 0.1 (ResNet-8, 40 steps: loss 1.71)"),
        new("mhc-lite", "mHC with H_res a convex combination of the n! permutation matrices: exactly doubly stochastic (Yang et al. 2026)",
            [
                new("n", (long)MhcLiteScheme.DefaultN, $"expansion rate: number of residual streams (at most {MhcLiteScheme.MaxN})"),
                new("res_gap", MhcLiteScheme.DefaultResGap, "initial logit of the identity above the other permutations'"),
            ],
            o => new MhcLiteScheme((int)o.Int("n", 1, MhcLiteScheme.MaxN), o.Double("res_gap", -100, 100)),
            OnResNet: "streams reduced to their mean per stage; trains at lr 0.1 (ResNet-8, 40 steps: loss 1.75)"),
        new("kromhc", "mHC with H_res a Kronecker product of doubly stochastic 2 x 2 factors: exact (Wang et al. 2026)",
            [
                new("n", (long)KromHcScheme.DefaultN, "expansion rate: number of residual streams (a power of two)"),
                new("res_gap", MhcLiteScheme.DefaultResGap, "initial logit of each factor's identity above its swap's"),
            ],
            o =>
            {
                int n = (int)o.Int("n", 1, 64);
                KromHcScheme.Factors(n);
                return new KromHcScheme(n, o.Double("res_gap", -100, 100));
            },
            OnResNet: "streams reduced to their mean per stage; trains at lr 0.1 (ResNet-8, 40 steps: loss 1.95)"),
        new("frac-connections", "Hyper-Connections over m fractions of the hidden state: the width does not grow (Zhu et al. 2025)",
            [
                new("fracs", (long)FracConnectionsScheme.DefaultFracs, "m: number of fractions (must divide d_model)"),
                new("dynamic", true, "add per-token (dynamic) weights to the static ones"),
            ],
            o => new FracConnectionsScheme((int)o.Int("fracs", 1, 1024), o.Bool("dynamic")),
            OnResNet: "trains at lr 0.1 (ResNet-8, 40 steps: loss 1.73)"),
        new("deep-delta", "x = (I - beta k k^T) x + beta v k, k the unit direction of F(LN(x)), beta in [0, 2] (Deep Delta Learning, Zhang et al. 2026)",
            [new("beta_init", 1.0, "initial gate beta (0 identity, 1 projection, 2 reflection)")],
            o => new DeepDeltaScheme(o.Double("beta_init", 0, 2)),
            OnResNet: "trains at lr 0.1 (ResNet-8, 40 steps: loss 1.61)"),
        new("attn-res", "sublayer input = softmax(w_l . RMSNorm(v_i)) weighted sum of all earlier outputs v_i (Attention Residuals, Kimi Team 2026)",
            [new("blocks", 0L, "0: full (every earlier output); N > 0: block AttnRes over N block summaries")],
            o => new AttentionResidualsScheme((int)o.Int("blocks", 0, 4096)),
            OnResNet: "trains at lr 0.1 (ResNet-8, 40 steps: loss 1.72)"),
        new("admin", "x = LN(omega x + F(x)), omega profiled on the first batch to sqrt(sum of earlier branch variances) (Admin, Liu et al. 2020)", [],
            _ => new AdminScheme(),
            OnResNet: "omega profiled per stage on the first batch; trains at lr 0.1 (ResNet-8, 40 steps: loss 1.73)"),
        new("ngpt", "h = Norm(h + alpha (Norm(F(h)) - h)) on the unit sphere, unit-norm weights, no norms (nGPT, Loshchilov et al. 2024)",
            [
                new("alpha_init", NGptScheme.DefaultAlphaInit, "initial eigen learning rate alpha of every dimension"),
                new("alpha_scale", 0.0, "the scale alpha is stored at (its effective learning rate); 0: 1/sqrt(d_model)"),
            ],
            o => new NGptScheme(o.Double("alpha_init", 0, 1), o.Double("alpha_scale", 0, 1)),
            OnResNet: "does not apply: the vision models lack what it needs (see models)"),
        new("mudd", "separate per-token dense sums of all earlier layer outputs for the query, key, value and residual inputs (MUDDFormer, Xiao et al. 2025)",
            [], _ => new MuddScheme(), Aliases: ["muddformer"],
            OnResNet: "does not apply: the vision models lack what it needs (see models)"),
        new("dca", "query, key and value from input-dependent per-dimension mixtures of all earlier layer outputs (DeepCrossAttention, Heddes et al. 2025)",
            [], _ => new DeepCrossAttentionScheme(), Aliases: ["deep-cross-attention"],
            OnResNet: "does not apply: the vision models lack what it needs (see models)"),
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
    /// </summary>
    /// <exception cref="ArgumentException">An unknown name, an option the scheme does not take, or a value of the wrong type or out of range; the message says which.</exception>
    public static ConnectionScheme Create(string name, IReadOnlyDictionary<string, object>? options = null)
    {
        var definition = Find(name) ?? throw new ArgumentException(
            $"unknown connection '{name}'{Suggest.DidYouMean(name, Names.Concat(All.SelectMany(e => e.Aliases ?? [])))}; 'reslab list connections' shows them all");
        var reader = new SchemeOptions(definition, options ?? new Dictionary<string, object>());
        var scheme = definition.Create(reader);
        reader.ThrowOnUnused();
        return scheme;
    }
}

/// <summary>Typed access to a scheme's options, with the scheme's defaults; remembers what was read.</summary>
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

    /// <summary>The option <paramref name="key"/> as a bool.</summary>
    /// <exception cref="ArgumentException">The value is not a bool.</exception>
    public bool Bool(string key) => Get(key) switch
    {
        bool b => b,
        var v => throw new ArgumentException($"connection.{key} must be true or false, got '{v}'"),
    };

    /// <summary>The option <paramref name="key"/> as an integer in [<paramref name="min"/>, <paramref name="max"/>].</summary>
    /// <exception cref="ArgumentException">The value is not an integer or out of range.</exception>
    public long Int(string key, long min = long.MinValue, long max = long.MaxValue)
    {
        long value = Get(key) switch
        {
            long l => l,
            int i => i,
            double d when d == Math.Floor(d) => (long)d,
            var v => throw new ArgumentException($"connection.{key} must be an integer, got '{v}'"),
        };
        if (value < min || value > max)
            throw new ArgumentException($"connection.{key} must be in [{min}, {max}], got {value}");
        return value;
    }

    /// <summary>The option <paramref name="key"/> as a number in [<paramref name="min"/>, <paramref name="max"/>].</summary>
    /// <exception cref="ArgumentException">The value is not a number or out of range.</exception>
    public double Double(string key, double min = double.NegativeInfinity, double max = double.PositiveInfinity)
    {
        double value = Get(key) switch
        {
            double d => d,
            long l => l,
            int i => i,
            var v => throw new ArgumentException($"connection.{key} must be a number, got '{v}'"),
        };
        if (!(value >= min && value <= max))
            throw new ArgumentException($"connection.{key} must be in [{min}, {max}], got {value}");
        return value;
    }

    /// <summary>The option <paramref name="key"/> as a string, one of <paramref name="allowed"/> when any are given.</summary>
    /// <exception cref="ArgumentException">The value is not a string or not allowed.</exception>
    public string String(string key, params string[] allowed)
    {
        string value = Get(key) as string ?? throw new ArgumentException($"connection.{key} must be a string");
        if (allowed.Length > 0 && !allowed.Contains(value))
            throw new ArgumentException($"connection.{key} must be one of {string.Join(", ", allowed)}, got '{value}'");
        return value;
    }

    internal void ThrowOnUnused()
    {
        foreach (var key in raw.Keys)
        {
            if (_used.Contains(key)) continue;
            var valid = definition.Options.Select(o => o.Key).ToList();
            string takes = valid.Count == 0 ? "it takes no options" : $"it takes: {string.Join(", ", valid)}";
            throw new ArgumentException($"option connection.{key} does not apply to '{definition.Name}'{Suggest.DidYouMean(key, valid)}; {takes}");
        }
    }
}
