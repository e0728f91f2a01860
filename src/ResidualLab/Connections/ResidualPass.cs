using ResidualLab.Hooks;
using static TorchSharp.torch;

namespace ResidualLab.Connections;

// Axes: ... leading axes (b batch, t position), s streams, d width (the last axis).

/// <summary>
/// One forward pass through a model's residual sublayers, and the only place the protocol's duties are carried:
/// the scheme's <see cref="ConnectionScheme.Expand"/> at the start; for each sublayer in turn the width step
/// (<see cref="Connection.Prepare"/>), the sublayer, the depth step (<see cref="Connection.Combine"/>), the stream recorded
/// in the <see cref="LayerContext"/>'s history (which DenseFormer, MUDD and Attention Residuals read) and the context
/// advanced; <see cref="ConnectionScheme.Reduce"/> at the end. The stream passes the TransformerLens hook points:
/// <c>blocks.{l}.hook_resid_pre</c> before a layer's first sublayer, <c>hook_resid_mid</c> between its sublayers and
/// <c>hook_resid_post</c> after its last (l counts layers of <c>sublayersPerLayer</c> sublayers).
/// <code>
/// var pass = new ResidualPass(scheme, x, sublayerCount: 2 * layers, sublayersPerLayer: 2);
/// for (int l = 0; l &lt; layers; l++)
/// {
///     pass.Step(connections[2 * l], b => attention.call(b.Input, mask));
///     pass.Step(connections[2 * l + 1], b => mlp.call(b.Input));
/// }
/// var hidden = pass.Finish();
/// </code>
/// <see cref="ResidualConnections"/> builds the connections and starts passes; <see cref="ResidualStack"/> runs a list of
/// sublayers through one.
/// </summary>
public sealed class ResidualPass
{
    readonly ConnectionScheme scheme;
    readonly int sublayersPerLayer;
    readonly long streams;
    readonly string hookPrefix;
    Tensor? lastRead; // the stream the previous sublayer's width step read

    /// <summary>Starts a pass: expands <paramref name="x0"/> [..., d] into the scheme's stream.</summary>
    /// <param name="scheme">The scheme every connection of the pass belongs to.</param>
    /// <param name="x0">The embedding, [..., d].</param>
    /// <param name="sublayerCount">How many sublayers the pass will step through (0: Expand then Reduce).</param>
    /// <param name="sublayersPerLayer">Sublayers per layer (block): 2 for a Transformer's attention and MLP, 1 otherwise.
    /// It names the hook points.</param>
    /// <param name="hooks">Hooks at the hook points, to read or patch the stream; null: none.</param>
    /// <param name="hookPrefix">Prefix of the hook point names (e.g. <c>stages.1.</c> for a model with several stacks).</param>
    public ResidualPass(ConnectionScheme scheme, Tensor x0, int sublayerCount, int sublayersPerLayer = 1, HookSet? hooks = null, string hookPrefix = "")
        : this(scheme, x0, new LayerContext(sublayerCount, hooks), sublayersPerLayer, hookPrefix) { }

    internal ResidualPass(ConnectionScheme scheme, Tensor x0, LayerContext context, int sublayersPerLayer, string hookPrefix)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(context.SublayerCount, "sublayerCount");
        ArgumentOutOfRangeException.ThrowIfLessThan(sublayersPerLayer, 1);
        this.scheme = scheme;
        this.sublayersPerLayer = sublayersPerLayer;
        this.hookPrefix = hookPrefix;
        Context = context;
        Stream = scheme.Expand(x0);
        streams = Stream.dim() > x0.dim() ? Stream.shape[^2] : 1; // [..., s, d] when the scheme widened the stream
        Context.Record(Stream);
    }

    /// <summary>The state the pass shares with its connections (sublayer index, history of streams).</summary>
    public LayerContext Context { get; }

    /// <summary>The residual stream now: [..., d], or [..., s, d] for a multi-stream scheme.</summary>
    public Tensor Stream { get; private set; }

    /// <summary>
    /// One sublayer: the width step of <paramref name="connection"/>, <paramref name="sublayer"/> on what it prepared,
    /// the depth step, then <paramref name="then"/> on the new stream (a ResNet's ReLU after the addition). Returns the
    /// new stream.
    /// </summary>
    /// <param name="connection">This sublayer's connection (built by the pass's scheme for this position).</param>
    /// <param name="sublayer">The sublayer, given the branch: its <see cref="Branch.Input"/> [..., d] (and, for schemes that
    /// feed an attention separately, <see cref="Branch.Attention"/>); returns [..., d].</param>
    /// <param name="outputHook">The hook point of the sublayer's output (e.g. <see cref="HookNames.AttnOut"/>); null: none.</param>
    /// <param name="then">Applied to the stream after the depth step; null: nothing.</param>
    /// <param name="parallel">The sublayer runs in parallel with the previous sublayer of its layer (a scheme with
    /// <see cref="ModelNeeds.ParallelSublayers"/>, GPT-J's block): its width step reads the stream the previous sublayer's
    /// width step read (the layer's input), and its depth step writes into the stream the previous sublayer left: the
    /// branch's <see cref="Branch.Stream"/> is that stream. The previous sublayer's output never reaches this sublayer.</param>
    /// <exception cref="InvalidOperationException">One sublayer more than the pass was started for, or a parallel sublayer that
    /// is the first of its layer.</exception>
    public Tensor Step(Connection connection, Func<Branch, Tensor> sublayer, string? outputHook = null, Func<Tensor, Tensor>? then = null,
        bool parallel = false)
    {
        int k = Context.SublayerIndex;
        if (k >= Context.SublayerCount)
            throw new InvalidOperationException($"the pass was started for {Context.SublayerCount} sublayers; sublayer {k + 1} is one too many");
        int layer = k / sublayersPerLayer, within = k % sublayersPerLayer;
        if (parallel && within == 0)
            throw new InvalidOperationException($"sublayer {k} is the first of its layer; only a later sublayer runs in parallel with the one before it");
        Stream = Context.Hook(hookPrefix + (within == 0 ? HookNames.ResidPre(layer) : HookNames.ResidMid(layer)), Stream);
        Context.ReplaceNewest(Stream);

        var read = parallel ? lastRead! : Stream;
        lastRead = read;
        var branch = connection.Prepare(read, Context);          // width step: what the sublayer sees
        if (parallel) branch = branch with { Stream = Stream };   // the depth step writes into the stream as it is now
        Context.Branches?.Add((connection, branch));
        var output = sublayer(branch);
        if (outputHook is not null) output = Context.Hook(hookPrefix + outputHook, output);
        var stream = connection.Combine(output, branch, Context); // depth step: how the output goes back into the stream
        if (then is not null) stream = then(stream);
        if (within == sublayersPerLayer - 1) stream = Context.Hook(hookPrefix + HookNames.ResidPost(layer), stream);

        Context.Advance();
        Context.Record(stream);
        return Stream = stream;
    }

    /// <summary>Ends the pass: the stream reduced to [..., d] by the scheme.</summary>
    /// <param name="meanOfStreams">Reduce a multi-stream scheme's s streams to their mean instead of the scheme's sum: a model
    /// that chains several passes without a norm between them (the vision models' stages) would otherwise multiply its
    /// scale by s at every boundary.</param>
    /// <exception cref="InvalidOperationException">The pass has not stepped through every sublayer it was started for.</exception>
    public Tensor Finish(bool meanOfStreams = false)
    {
        if (Context.SublayerIndex != Context.SublayerCount)
            throw new InvalidOperationException(
                $"the pass was started for {Context.SublayerCount} sublayers but stepped through {Context.SublayerIndex}; every sublayer needs its Step");
        var reduced = scheme.Reduce(Stream);
        return meanOfStreams && streams > 1 ? reduced / streams : reduced;
    }
}
