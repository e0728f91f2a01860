using static TorchSharp.torch;

namespace ResidualLab.Connections;

/// <summary>
/// An immutable, fully specified connection scheme (one record per scheme, listed once in
/// <see cref="ConnectionCatalog"/>). It builds one <see cref="Connection"/> per sublayer, and
/// expands the embedding into the stream and reduces the stream back to one hidden state.
/// </summary>
public abstract record ConnectionScheme
{
    /// <summary>The scheme's name as used in configs and on the command line.</summary>
    public abstract string Name { get; }

    /// <summary>A new connection of this scheme for the sublayer at <paramref name="site"/>, with its own parameters.</summary>
    public abstract Connection Build(ConnectionSite site);

    /// <summary>Embedding [b, t, d] to the residual stream (identity unless the scheme has streams).</summary>
    public virtual Tensor Expand(Tensor x0) => x0;

    /// <summary>Residual stream to the final hidden state [b, t, d].</summary>
    public virtual Tensor Reduce(Tensor stream) => stream;

    /// <summary>
    /// Forward FLOPs per token of the connection around the sublayer at <paramref name="site"/>: its norms,
    /// gates, mixing maps and additions, not the sublayer's own work (counted as <see cref="ConnectionFlops"/> says).
    /// </summary>
    internal virtual double ForwardFlops(ConnectionSite site) => double.NaN;

    /// <summary>Forward FLOPs per token of <see cref="Expand"/> and <see cref="Reduce"/> at width <paramref name="width"/>, once per model.</summary>
    internal virtual double StreamFlops(int width) => 0;

    /// <summary>What the scheme needs from the model beyond Prepare and Combine; <see cref="ModelNeeds.None"/> for most.</summary>
    public virtual ModelNeeds Needs => ModelNeeds.None;

    /// <summary>How the attention sublayer at <paramref name="site"/> is to be shaped; read by a model only when <see cref="Needs"/>
    /// has <see cref="ModelNeeds.AttentionShape"/>. <see cref="AttentionShape.Standard"/> unless the scheme says otherwise.</summary>
    public virtual AttentionShape AttentionAt(ConnectionSite site) => AttentionShape.Standard;

    /// <summary>How the MLP sublayer at <paramref name="site"/> is to be shaped; read by a model only when <see cref="Needs"/> has
    /// <see cref="ModelNeeds.MlpShape"/>. <see cref="MlpShape.Standard"/> unless the scheme says otherwise.</summary>
    public virtual MlpShape MlpAt(ConnectionSite site) => MlpShape.Standard;

    /// <summary>
    /// The AdamW rule the scheme's paper pairs with it, for a model of <paramref name="layers"/> layers: a factor on
    /// the learning rate of the parameters inside the blocks and one on eps. <see cref="AdamWRule.None"/> for most;
    /// the language-model task applies it (the vision models train with SGD and ignore it).
    /// </summary>
    internal virtual AdamWRule OptimizerRule(int layers) => AdamWRule.None;

    /// <summary>The options as config key/value pairs (for the canonical config and reports).</summary>
    public abstract IReadOnlyDictionary<string, object> Options { get; }
}

/// <summary>Factors on AdamW's settings a scheme asks for: <paramref name="HiddenLr"/> multiplies the learning rate (and so the
/// decoupled weight decay) of every parameter inside the blocks, <paramref name="Eps"/> multiplies eps for all.</summary>
internal sealed record AdamWRule(double HiddenLr, double Eps)
{
    /// <summary>No change: one learning rate and eps for every parameter.</summary>
    public static AdamWRule None { get; } = new(1, 1);
}

/// <summary>The words for what a scheme needs from the model, for errors and <c>reslab list connections</c>.</summary>
public static class ModelNeedsText
{
    /// <summary>What <paramref name="needs"/> asks of a model, in a phrase ("" for <see cref="ModelNeeds.None"/>).</summary>
    public static string Describe(ModelNeeds needs) => string.Join(" and ", new[]
    {
        needs.HasFlag(ModelNeeds.AttentionInputs) ? "an attention sublayer with separate query, key and value inputs" : null,
        needs.HasFlag(ModelNeeds.UnitNormWeights) ? "unit-norm weight matrices and no norm or ReLU between its sublayers" : null,
        needs.HasFlag(ModelNeeds.AttentionShape) ? "a causal attention sublayer whose attention matrix, value and output projections it shapes" : null,
        needs.HasFlag(ModelNeeds.MlpShape) ? "an MLP sublayer whose activation and initialisation it sets" : null,
        needs.HasFlag(ModelNeeds.ParallelSublayers) ? "attention and MLP sublayers that run in parallel on the block's input" : null,
    }.OfType<string>());
}
