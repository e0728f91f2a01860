using ResidualLab.Hooks;
using static TorchSharp.torch;

namespace ResidualLab.Connections;

// Axes used in the connection files: b batch, t position, s streams, d model width.

/// <summary>What the width step hands to the depth step of the same sublayer.</summary>
/// <param name="Input">What the sublayer sees, [b, t, d].</param>
/// <param name="Stream">The residual stream before the sublayer ([b, t, d], or [b, t, s, d] with streams).</param>
/// <param name="Mix">Scheme-specific state (e.g. HC's depth weights for this input).</param>
/// <param name="Attention">Separate query, key and value inputs for an attention sublayer (MUDDFormer,
/// DeepCrossAttention); null: the sublayer reads <paramref name="Input"/> for all three. Only a scheme whose
/// <see cref="ConnectionScheme.Needs"/> has <see cref="ModelNeeds.AttentionInputs"/> sets it, and only at a site
/// whose <see cref="ConnectionSite.TakesAttentionInputs"/> is true.</param>
public readonly record struct Branch(Tensor Input, Tensor Stream, Tensor? Mix = null, AttentionInputs? Attention = null);

/// <summary>What an attention sublayer reads when its query, key and value come from different mixtures of the
/// earlier layers' outputs, each [b, t, d] and already normalised.</summary>
public sealed record AttentionInputs(Tensor Query, Tensor Key, Tensor Value);

/// <summary>
/// What a scheme needs from the model beyond Prepare and Combine (<see cref="ConnectionScheme.Needs"/>). Models read
/// these flags, never scheme names; a model that cannot provide one rejects the scheme with a one-line error (the
/// vision models and <see cref="ResidualStack"/> provide none).
/// </summary>
[Flags]
public enum ModelNeeds
{
    /// <summary>Prepare and Combine are all the scheme needs.</summary>
    None = 0,

    /// <summary>The attention sublayer takes separate query, key and value inputs (<see cref="Branch.Attention"/>);
    /// the model marks its attention sites with <see cref="ConnectionSite.TakesAttentionInputs"/>.</summary>
    AttentionInputs = 1,

    /// <summary>
    /// A normalised transformer (nGPT): the model keeps its embeddings and every matrix that reads from or writes
    /// into the stream at unit norm along the model width, at init and again after every optimiser step (the
    /// training task's post-step hook), trains them without weight decay, normalises each attention head's query
    /// and key (with a learned scale) and scales the MLP's hidden pre-activation, and replaces its final norm by a
    /// learned logit scale per vocabulary entry.
    /// </summary>
    UnitNormWeights = 2,

    /// <summary>The attention sublayer is shaped as the scheme says (<see cref="ConnectionScheme.AttentionAt"/>): its attention
    /// matrix alpha I + beta A - gamma C with a fixed causal prior, its value and output projections, its query and key init.</summary>
    AttentionShape = 4,

    /// <summary>The MLP sublayer is shaped as the scheme says (<see cref="ConnectionScheme.MlpAt"/>): its activation, biases and init.</summary>
    MlpShape = 8,

    /// <summary>The sublayers of a layer run in parallel: each reads the layer's input stream, and each depth step writes into
    /// the stream the previous one left (<see cref="ResidualPass.Step"/> with <c>parallel</c>), as in GPT-J's block.</summary>
    ParallelSublayers = 16,
}

/// <summary>Where a connection sits in a model, and how that model makes its norms.</summary>
/// <param name="Width">The sublayer's width d (channels for conv models).</param>
/// <param name="SublayerIndex">0-based index of this sublayer among all residual sublayers.</param>
/// <param name="SublayerCount">Number of residual sublayers in the model (2 per transformer block).</param>
/// <param name="MakeNorm">The model's normalisation over the width (LayerNorm for the GPT).</param>
/// <param name="SublayersPerLayer">Residual sublayers per layer (block) of the model: 2 for the GPT (attention and
/// MLP), 1 for the vision models. Schemes whose rule is written per layer (LayerNorm scaling, Mix-LN, CompleteP)
/// read <see cref="Layer"/> and <see cref="LayerCount"/>.</param>
/// <param name="TakesAttentionInputs">The sublayer is an attention that reads <see cref="Branch.Attention"/> when it is set.</param>
public sealed record ConnectionSite(int Width, int SublayerIndex, int SublayerCount, Func<nn.Module<Tensor, Tensor>> MakeNorm,
    int SublayersPerLayer = 1, bool TakesAttentionInputs = false)
{
    /// <summary>0-based index of the layer (block) this sublayer belongs to.</summary>
    public int Layer => SublayerIndex / SublayersPerLayer;

    /// <summary>Number of layers (blocks) of the model.</summary>
    public int LayerCount => SublayerCount / SublayersPerLayer;
}

/// <summary>
/// One residual connection around one sublayer. Every block is the same three lines:
/// <code>
/// var branch = conn.Prepare(h, ctx);   // width step: what the sublayer sees
/// var y = sublayer.call(branch.Input);
/// h = conn.Combine(y, branch, ctx);     // depth step: how y goes back into the stream
/// </code>
/// </summary>
/// <param name="name">The module's name (TorchSharp's).</param>
public abstract class Connection(string name) : nn.Module(name)
{
    /// <summary>The width step: from the residual <paramref name="stream"/>, what the sublayer sees (<see cref="Branch.Input"/>, [..., d]).</summary>
    public abstract Branch Prepare(Tensor stream, LayerContext ctx);

    /// <summary>The depth step: the sublayer's <paramref name="output"/> [..., d] back into the stream the <paramref name="branch"/> came from.</summary>
    public abstract Tensor Combine(Tensor output, Branch branch, LayerContext ctx);

    /// <summary>Scheme-specific initialisation of the wrapped sublayer (e.g. DeepNorm's beta).</summary>
    public virtual void InitializeSublayer(IResidualSublayer sublayer) { }

    /// <summary>Parameters of the connection itself that must not get weight decay (gates, scales, mixing).</summary>
    public virtual IEnumerable<TorchSharp.Modules.Parameter> NoDecayParameters() => parameters();
}

/// <summary>A sublayer whose output-side weights a scheme may rescale at init (DeepNorm).</summary>
public interface IResidualSublayer
{
    /// <summary>Multiplies the weights that write into the residual stream (value/out/ffn) by <paramref name="gain"/>.</summary>
    void ScaleResidualWeights(double gain);
}

/// <summary>
/// Per-forward-pass state shared by the connections of one model: which sublayer runs, and the stream after each
/// sublayer. A <see cref="ResidualPass"/> makes one, records every stream in it and advances it; connections read it.
/// </summary>
public sealed class LayerContext
{
    readonly HookSet? hooks;
    readonly List<Tensor> history = [];

    internal LayerContext(int sublayerCount, HookSet? hooks = null)
    {
        SublayerCount = sublayerCount;
        this.hooks = hooks;
    }

    /// <summary>The activation at hook point <paramref name="name"/>, after any hook attached there.</summary>
    internal Tensor Hook(string name, Tensor activation) => hooks is null ? activation : hooks.Run(name, activation);

    /// <summary>Each sublayer's connection and the branch it prepared, in order, when a caller asks for them
    /// (direct logit attribution replays the depth steps); null: not recorded.</summary>
    internal List<(Connection Connection, Branch Branch)>? Branches { get; init; }

    /// <summary>Index of the sublayer being run.</summary>
    public int SublayerIndex { get; private set; }

    /// <summary>Number of residual sublayers in the model.</summary>
    public int SublayerCount { get; }

    /// <summary>The stream after Expand and after each sublayer so far, in order (DenseFormer, MUDD and Attention
    /// Residuals read it).</summary>
    public IReadOnlyList<Tensor> History => history;

    /// <summary>Appends the stream after a sublayer (or after Expand) to <see cref="History"/>.</summary>
    internal void Record(Tensor stream) => history.Add(stream);

    /// <summary>Replaces the newest stream of <see cref="History"/> (a hook patched it).</summary>
    internal void ReplaceNewest(Tensor stream) => history[^1] = stream;

    /// <summary>The first attention layer's values, [b, nh, t, hs] (value residual reads them).</summary>
    internal Tensor? FirstValues { get; set; }

    /// <summary>Values one forward pass's connections share between sublayers (Admin's profiled variance), by key.</summary>
    internal Dictionary<string, Tensor> PassState { get; } = [];

    /// <summary>Moves on to the next sublayer.</summary>
    internal void Advance() => SublayerIndex++;
}
