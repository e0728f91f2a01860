using ResidualLab.Hooks;
using static TorchSharp.torch;

namespace ResidualLab.Connections;

// Axes: ... leading axes (b batch, t position), s streams, d width (the last axis).

/// <summary>
/// The connections of a model's residual sublayers, one per sublayer, all of one scheme: what a user's own model holds
/// in place of its <c>x = x + F(LN(x))</c> lines. Each forward pass starts with <see cref="Begin"/> and steps through the
/// sublayers in order:
/// <code>
/// var pass = residual.Begin(x);                                  // [b, t, d]
/// for (int l = 0; l &lt; layers; l++)
/// {
///     pass.Step(residual[2 * l], b => attention[l].call(b.Input, mask));
///     pass.Step(residual[2 * l + 1], b => mlp[l].call(b.Input));
/// }
/// return pass.Finish();                                          // [b, t, d]
/// </code>
/// </summary>
public sealed class ResidualConnections : nn.Module
{
    readonly TorchSharp.Modules.ModuleList<Connection> connections;

    /// <summary>Builds one connection of <paramref name="scheme"/> for each of <paramref name="sublayers"/> sublayers.</summary>
    /// <param name="scheme">The scheme, e.g. <c>new ManifoldHyperConnectionsScheme(N: 4)</c> or from <see cref="ConnectionCatalog.Create"/>.</param>
    /// <param name="width">The width d of the sublayers' input and output (the last axis).</param>
    /// <param name="sublayers">How many residual sublayers the model has.</param>
    /// <param name="sublayersPerLayer">Residual sublayers per layer (block): 2 for a Transformer's attention and MLP. Schemes whose
    /// rule is written per layer (Mix-LN, CompleteP) and the hook point names count layers of this many sublayers.</param>
    /// <param name="makeNorm">The norm the scheme puts where it normalises; LayerNorm over d when null.</param>
    /// <param name="attentionSublayer">Which sublayer of each layer is an attention that reads <see cref="Branch.Attention"/> when a
    /// scheme sets it (MUDDFormer, DeepCrossAttention); null: none does, and such schemes are refused.</param>
    /// <exception cref="ArgumentException">The width or counts are out of range, or the scheme needs from the model what this
    /// configuration does not provide.</exception>
    public ResidualConnections(ConnectionScheme scheme, int width, int sublayers, int sublayersPerLayer = 1,
        Func<nn.Module<Tensor, Tensor>>? makeNorm = null, int? attentionSublayer = null) : base(nameof(ResidualConnections))
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(width, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(sublayers, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(sublayersPerLayer, 1);
        if (sublayers % sublayersPerLayer != 0)
            throw new ArgumentException($"sublayers ({sublayers}) must be a multiple of sublayersPerLayer ({sublayersPerLayer})", nameof(sublayers));
        if (attentionSublayer is { } a && (a < 0 || a >= sublayersPerLayer))
            throw new ArgumentOutOfRangeException(nameof(attentionSublayer), $"attentionSublayer must be in [0, {sublayersPerLayer - 1}], got {a}");
        var provided = attentionSublayer is null ? ModelNeeds.None : ModelNeeds.AttentionInputs;
        if ((scheme.Needs & ~provided) != ModelNeeds.None)
            throw new ArgumentException(
                $"scheme '{scheme.Name}' needs {ModelNeedsText.Describe(scheme.Needs & ~provided)}, which this model does not provide"
                + (scheme.Needs.HasFlag(ModelNeeds.AttentionInputs) && attentionSublayer is null ? " (give attentionSublayer when one sublayer of each layer is such an attention)" : "")
                + ((scheme.Needs & (ModelNeeds.AttentionShape | ModelNeeds.MlpShape | ModelNeeds.ParallelSublayers)) != ModelNeeds.None
                    ? "; it reshapes the sublayers themselves (ConnectionScheme.AttentionAt, MlpAt), which only a model built to read them can do (the lab's GPT); around sublayers of your own use a scheme that needs nothing, such as 'none' or 'pre-norm'"
                    : ""),
                nameof(scheme));
        Scheme = scheme;
        Width = width;
        SublayersPerLayer = sublayersPerLayer;
        var norm = makeNorm ?? (() => nn.LayerNorm(width));
        connections = nn.ModuleList(Enumerable.Range(0, sublayers)
            .Select(k => scheme.Build(new ConnectionSite(width, k, sublayers, norm, sublayersPerLayer, k % sublayersPerLayer == attentionSublayer)))
            .ToArray());
        RegisterComponents();
    }

    /// <summary>The scheme every sublayer is connected with.</summary>
    public ConnectionScheme Scheme { get; }

    /// <summary>The width d of the stream's last axis.</summary>
    public int Width { get; }

    /// <summary>Residual sublayers per layer.</summary>
    public int SublayersPerLayer { get; }

    /// <summary>The number of sublayers (and connections).</summary>
    public int Count => connections.Count;

    /// <summary>The connection of sublayer <paramref name="sublayer"/>.</summary>
    public Connection this[int sublayer] => connections[sublayer];

    /// <summary>Starts a forward pass on the embedding <paramref name="x0"/> [..., d].</summary>
    /// <param name="hooks">Hooks at the pass's hook points (resid_pre, resid_mid, resid_post); null: none.</param>
    public ResidualPass Begin(Tensor x0, HookSet? hooks = null) => new(Scheme, x0, Count, SublayersPerLayer, hooks);

    /// <summary>Applies the scheme's initialisation of a sublayer (DeepNorm's beta) to <paramref name="sublayer"/>, which the
    /// connection of sublayer <paramref name="index"/> wraps.</summary>
    public void InitializeSublayer(int index, IResidualSublayer sublayer) => connections[index].InitializeSublayer(sublayer);

    /// <summary>Parameters of the connections that should get no weight decay (gates, scales, mixing).</summary>
    public IEnumerable<TorchSharp.Modules.Parameter> NoDecayParameters() => connections.SelectMany(c => c.NoDecayParameters());
}

/// <summary>
/// A user's sublayers on one residual stream of a scheme: [..., d] in, every sublayer F_k ([..., d] to [..., d]) in turn
/// through its connection, [..., d] out. A drop-in for the loop <c>for each F: x = x + F(LN(x))</c> of a user's model,
/// with the scheme chosen at run time. Sublayers that take more than the stream (an attention with a mask) use
/// <see cref="ResidualConnections"/> directly.
/// </summary>
public sealed class ResidualStack : nn.Module<Tensor, Tensor>
{
    readonly ResidualConnections residual;
    readonly TorchSharp.Modules.ModuleList<nn.Module<Tensor, Tensor>> sublayers;

    /// <summary>Wraps each of <paramref name="sublayers"/> (in order) in a connection of <paramref name="scheme"/>, applying the
    /// scheme's sublayer initialisation (DeepNorm's beta) to those that implement <see cref="IResidualSublayer"/>.</summary>
    /// <param name="scheme">The scheme, e.g. <c>new ManifoldHyperConnectionsScheme(N: 4)</c> or from <see cref="ConnectionCatalog.Create"/>.</param>
    /// <param name="width">The width d of the sublayers' input and output (the last axis).</param>
    /// <param name="sublayers">The user's sublayers, each [..., d] to [..., d].</param>
    /// <param name="makeNorm">The norm the scheme puts where it normalises; LayerNorm over d when null.</param>
    /// <exception cref="ArgumentException">No sublayers, a width below 1, or a scheme that needs more than sublayers of the stream.</exception>
    public ResidualStack(ConnectionScheme scheme, int width, IReadOnlyList<nn.Module<Tensor, Tensor>> sublayers,
        Func<nn.Module<Tensor, Tensor>>? makeNorm = null) : base(nameof(ResidualStack))
    {
        if (sublayers.Count == 0) throw new ArgumentException("a residual stack needs at least one sublayer", nameof(sublayers));
        residual = new ResidualConnections(scheme, width, sublayers.Count, makeNorm: makeNorm);
        this.sublayers = nn.ModuleList(sublayers.ToArray());
        RegisterComponents();
        for (int k = 0; k < sublayers.Count; k++)
            if (sublayers[k] is IResidualSublayer scalable) residual.InitializeSublayer(k, scalable);
        using var probe = zeros(1, width);
        using var expanded = scheme.Expand(probe);
        StreamCount = expanded.dim() > probe.dim() ? (int)expanded.shape[^2] : 1;
    }

    /// <summary>The scheme every sublayer is connected with.</summary>
    public ConnectionScheme Scheme => residual.Scheme;

    /// <summary>The number of residual streams s (1 for the schemes whose stream is [..., d]).</summary>
    public int StreamCount { get; }

    /// <summary>The connections, one per sublayer.</summary>
    public ResidualConnections Connections => residual;

    /// <summary>The wrapped sublayers, in order.</summary>
    public IReadOnlyList<nn.Module<Tensor, Tensor>> Sublayers => sublayers.ToList();

    /// <summary>[..., d] to [..., d] through every sublayer.</summary>
    public override Tensor forward(Tensor x) => Run(residual.Begin(x));

    Tensor Run(ResidualPass pass)
    {
        for (int k = 0; k < sublayers.Count; k++)
        {
            var sublayer = sublayers[k];
            pass.Step(residual[k], b => sublayer.call(b.Input));
        }
        return pass.Finish();
    }

    /// <summary>
    /// Runs <paramref name="x"/> through the stack without gradients and returns the residual stream
    /// after Expand and after every sublayer (count + 1 tensors, each [..., d] or [..., s, d]).
    /// </summary>
    public IReadOnlyList<Tensor> Trace(Tensor x)
    {
        using var _ = no_grad();
        var pass = residual.Begin(x);
        Run(pass);
        return pass.Context.History;
    }

    /// <summary>
    /// The Amax gain of the product of every sublayer's residual mixing H_res for input
    /// <paramref name="x"/> (see <see cref="AmaxGain"/>); null for schemes without stream mixing.
    /// </summary>
    public AmaxGain? ResidualGain(Tensor x)
    {
        using var scope = NewDisposeScope();
        Trace(x);
        var maps = Enumerable.Range(0, residual.Count).Select(k => (residual[k] as IStreamMixing)?.LastMaps).ToList();
        return maps.All(m => m is not null) ? AmaxGain.OfProduct(maps.Select(m => m!.Res)) : null;
    }

    /// <summary>Parameters of the connections that should get no weight decay (gates, scales, mixing).</summary>
    public IEnumerable<TorchSharp.Modules.Parameter> NoDecayParameters() => residual.NoDecayParameters();
}
