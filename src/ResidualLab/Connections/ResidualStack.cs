using static TorchSharp.torch;

namespace ResidualLab.Connections;

// Axes: ... leading axes (b batch, t position), s streams, d width (the last axis).

/// <summary>
/// A user's sublayer F wrapped by one connection: the three lines every block of the lab runs,
/// <c>branch = conn.Prepare(h)</c>, <c>y = F(branch.Input)</c>, <c>h = conn.Combine(y, branch)</c>.
/// F maps [..., d] to [..., d]; the stream it is called on has the scheme's shape ([..., d], or
/// [..., s, d] for the multi-stream schemes).
/// </summary>
public sealed class ResidualBlock : nn.Module<Tensor, LayerContext, Tensor>
{
    readonly Connection connection;
    readonly nn.Module<Tensor, Tensor> sublayer;

    /// <summary>Wraps <paramref name="sublayer"/> in <paramref name="connection"/>, applying the scheme's sublayer initialisation
    /// (DeepNorm's beta) when the sublayer implements <see cref="IResidualSublayer"/>.</summary>
    public ResidualBlock(Connection connection, nn.Module<Tensor, Tensor> sublayer) : base(nameof(ResidualBlock))
    {
        this.connection = connection;
        this.sublayer = sublayer;
        RegisterComponents();
        if (sublayer is IResidualSublayer scalable) connection.InitializeSublayer(scalable);
    }

    /// <summary>The connection around the sublayer.</summary>
    public Connection Connection => connection;

    /// <summary>The wrapped sublayer.</summary>
    public nn.Module<Tensor, Tensor> Sublayer => sublayer;

    /// <summary>One step of the residual stream: <paramref name="stream"/> to the stream after this sublayer.</summary>
    public override Tensor forward(Tensor stream, LayerContext ctx)
    {
        var branch = connection.Prepare(stream, ctx);   // width step: what the sublayer sees
        var y = sublayer.call(branch.Input);
        return connection.Combine(y, branch, ctx);      // depth step: how y goes back into the stream
    }
}

/// <summary>
/// A user's sublayers on one residual stream of a scheme: [..., d] in, Expand, every sublayer in its
/// <see cref="ResidualBlock"/>, Reduce, [..., d] out. A drop-in for the loop
/// <c>for each F: x = x + F(LN(x))</c> of a user's model, with the scheme chosen at run time.
/// </summary>
public sealed class ResidualStack : nn.Module<Tensor, Tensor>
{
    readonly ConnectionScheme scheme;
    readonly TorchSharp.Modules.ModuleList<ResidualBlock> blocks;

    /// <summary>Wraps each of <paramref name="sublayers"/> (in order) in a connection of <paramref name="scheme"/>.</summary>
    /// <param name="scheme">The scheme, e.g. from <see cref="ConnectionCatalog.Create"/>.</param>
    /// <param name="width">The width d of the sublayers' input and output (the last axis).</param>
    /// <param name="sublayers">The user's sublayers, each [..., d] to [..., d].</param>
    /// <param name="makeNorm">The norm the scheme puts where it normalises; LayerNorm over d when null.</param>
    public ResidualStack(ConnectionScheme scheme, int width, IReadOnlyList<nn.Module<Tensor, Tensor>> sublayers,
        Func<nn.Module<Tensor, Tensor>>? makeNorm = null) : base(nameof(ResidualStack))
    {
        if (width < 1) throw new ArgumentOutOfRangeException(nameof(width), width, "the width must be at least 1");
        if (sublayers.Count == 0) throw new ArgumentException("a residual stack needs at least one sublayer", nameof(sublayers));
        if (scheme.Needs != ModelNeeds.None)
            throw new ArgumentException($"scheme '{scheme.Name}' needs {ModelNeedsText.Describe(scheme.Needs)}, which a residual stack of any sublayers does not provide", nameof(scheme));
        this.scheme = scheme;
        var norm = makeNorm ?? (() => nn.LayerNorm(width));
        blocks = nn.ModuleList(sublayers
            .Select((f, i) => new ResidualBlock(scheme.Build(new ConnectionSite(width, i, sublayers.Count, norm)), f))
            .ToArray());
        RegisterComponents();
        using var probe = zeros(1, width);
        var expanded = scheme.Expand(probe);
        StreamCount = expanded.dim() > probe.dim() ? (int)expanded.shape[^2] : 1;
    }

    /// <summary>The scheme every sublayer is connected with.</summary>
    public ConnectionScheme Scheme => scheme;

    /// <summary>The number of residual streams s (1 for the schemes whose stream is [..., d]).</summary>
    public int StreamCount { get; }

    /// <summary>The blocks, one per sublayer, in order.</summary>
    public IReadOnlyList<ResidualBlock> Blocks => blocks.ToList();

    /// <summary>[..., d] to [..., d] through every sublayer.</summary>
    public override Tensor forward(Tensor x) => StreamStack.Run(scheme, blocks, blocks.Count, x);

    /// <summary>
    /// Runs <paramref name="x"/> through the stack without gradients and returns the residual stream
    /// after Expand and after every sublayer (count + 1 tensors, each [..., d] or [..., s, d]).
    /// </summary>
    public IReadOnlyList<Tensor> Trace(Tensor x)
    {
        using var _ = no_grad();
        var ctx = new LayerContext(blocks.Count);
        StreamStack.Run(scheme, blocks, blocks.Count, x, ctx);
        return ctx.History;
    }

    /// <summary>
    /// The Amax gain of the product of every sublayer's residual mixing H_res for input
    /// <paramref name="x"/> (see <see cref="AmaxGain"/>); null for schemes without stream mixing.
    /// </summary>
    public AmaxGain? ResidualGain(Tensor x)
    {
        using var scope = NewDisposeScope();
        Trace(x);
        var maps = blocks.Select(b => (b.Connection as IStreamMixing)?.LastMaps).ToList();
        return maps.All(m => m is not null) ? AmaxGain.OfProduct(maps.Select(m => m!.Res)) : null;
    }

    /// <summary>Parameters of the connections that should get no weight decay (gates, scales, mixing).</summary>
    public IEnumerable<TorchSharp.Modules.Parameter> NoDecayParameters() => blocks.SelectMany(b => b.Connection.NoDecayParameters());
}
