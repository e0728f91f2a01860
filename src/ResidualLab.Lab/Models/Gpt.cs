using ResidualLab.Connections;
using ResidualLab.Hooks;
using ResidualLab.Layers;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace ResidualLab.Models;

/// <summary>
/// A GPT language model (Radford et al. 2019; nanoGPT): token + position embeddings, n_layer blocks of
/// attention and MLP, a final LayerNorm, and a head tied to the token embedding. How each sublayer's
/// output goes back into the residual stream is the connection scheme's business, never the model's.
/// What a scheme needs beyond that, the model reads from <see cref="ConnectionScheme.Needs"/>: separate query, key and
/// value inputs for the attention (<see cref="ModelNeeds.AttentionInputs"/>), or unit-norm weights
/// (<see cref="ModelNeeds.UnitNormWeights"/>: embeddings and matrices renormalised by <see cref="NormaliseWeights"/>,
/// no final norm, logits scaled by a learned s_z per vocabulary entry, stored at 1/sqrt(d), init 1), an attention and an MLP
/// shaped as the scheme asks (<see cref="ModelNeeds.AttentionShape"/>, <see cref="ModelNeeds.MlpShape"/>: the records of
/// <see cref="ConnectionScheme.AttentionAt"/> and <see cref="ConnectionScheme.MlpAt"/>), or a block whose MLP runs in
/// parallel with its attention (<see cref="ModelNeeds.ParallelSublayers"/>).
/// </summary>
internal sealed class Gpt : nn.Module<Tensor, Tensor>
{
    readonly Embedding wte;
    readonly Embedding wpe;
    readonly Dropout drop;
    readonly ModuleList<GptBlock> h;
    readonly LayerNorm ln_f;
    readonly Parameter? logit_scale;   // s_z [vocab], unit-norm weights only

    public GptConfig Config { get; }
    public ConnectionScheme Connection { get; }

    public Gpt(GptConfig config, ConnectionScheme connection) : base(Loaded(nameof(Gpt)))
    {
        if (ShapeProblem(config, connection) is { } problem) throw new ArgumentException(problem);
        Config = config;
        Connection = connection;
        int sublayers = 2 * config.NLayer;
        wte = nn.Embedding(config.VocabSize, config.DModel);
        wpe = nn.Embedding(config.BlockSize, config.DModel);
        drop = nn.Dropout(config.Dropout);
        h = new ModuleList<GptBlock>(Enumerable.Range(0, config.NLayer)
            .Select(i => new GptBlock(config, connection, i, sublayers)).ToArray());
        ln_f = nn.LayerNorm(config.DModel, bias: config.Bias);
        if (UnitNormWeights) logit_scale = nn.Parameter(full(config.VocabSize, 1 / Math.Sqrt(config.DModel)));
        RegisterComponents();
        Init.Embedding(wte, config.Init);
        Init.Embedding(wpe, config.Init);
        if (UnitNormWeights) NormaliseWeights();
    }

    /// <summary>The scheme needs unit-norm weights (nGPT): the training task calls <see cref="NormaliseWeights"/> after every step
    /// and trains without weight decay.</summary>
    public bool UnitNormWeights => Connection.Needs.HasFlag(ModelNeeds.UnitNormWeights);

    /// <summary>The embeddings and the matrices that read from or write into the stream, each with the axis along which it is
    /// kept at unit norm (the one of length d).</summary>
    public IEnumerable<(Tensor Weight, int Axis)> UnitNormMatrices() =>
        h.SelectMany(b => b.UnitNormMatrices()).Prepend((wpe.weight!, 1)).Prepend((wte.weight!, 1));

    /// <summary>
    /// Puts every matrix of <see cref="UnitNormMatrices"/> back on the unit sphere along its d axis. Where the optimiser keeps
    /// fp32 master weights (bf16 training), <paramref name="masters"/> maps a parameter's handle to its master: the master is
    /// normalised and copied into the parameter.
    /// </summary>
    public void NormaliseWeights(IReadOnlyDictionary<IntPtr, Tensor>? masters = null)
    {
        using var _ = no_grad();
        foreach (var (weight, axis) in UnitNormMatrices())
        {
            var target = masters is not null && masters.TryGetValue(weight.Handle, out var master) ? master : weight;
            target.div_(linalg.vector_norm(target, dims: [axis], keepdim: true));
            if (!ReferenceEquals(target, weight)) weight.copy_(target);
        }
    }

    /// <summary>Why the GPT <paramref name="config"/> cannot take <paramref name="connection"/>'s shape of its sublayers, or null: the
    /// value residual mixes values that a scheme without value projections does not have.</summary>
    public static string? ShapeProblem(GptConfig config, ConnectionScheme connection) =>
        !config.ValueResidual || AttentionShapes(config, connection).All(s => s.Value is ProjectionShape.Learned or ProjectionShape.Orthogonal) ? null
            : $"model.value_residual mixes each layer's values with the first layer's, but '{connection.Name}' removes the value projections (its values are the attention's input); set model.value_residual = false";

    /// <summary>The shape of each block's attention with <paramref name="connection"/> (<see cref="AttentionShape.Standard"/> unless the
    /// scheme shapes it), read without building the model.</summary>
    public static IEnumerable<AttentionShape> AttentionShapes(GptConfig config, ConnectionScheme connection) =>
        Enumerable.Range(0, config.NLayer).Select(l => connection.Needs.HasFlag(ModelNeeds.AttentionShape)
            ? connection.AttentionAt(GptBlock.AttentionSite(config, l, NoNorm))
            : AttentionShape.Standard);

    /// <summary>A site's norm, never built where a shape is only read.</summary>
    static nn.Module<Tensor, Tensor> NoNorm() => throw new InvalidOperationException("reading a scheme's sublayer shapes builds no norm");

    static string Loaded(string name)
    {
        Native.LabRuntime.EnsureLoaded();
        return name;
    }

    public IReadOnlyList<GptBlock> Blocks => h.ToList();

    /// <summary>Token ids [b, t] to logits [b, t, vocab].</summary>
    public override Tensor forward(Tensor idx) => Head(Forward(idx, Hooks), Hooks);

    /// <summary>Hooks attached to the model, applied by every <see cref="forward"/> (training probes attach them
    /// for one step); null: none. Explicit hooks go through <see cref="Run"/>.</summary>
    public HookSet? Hooks { get; set; }

    /// <summary>Runs the embeddings and blocks; returns the final residual stream [b, t, d] after Reduce.</summary>
    /// <param name="hooks">Hooks at the hook points (<see cref="HookNames"/>), to read or patch activations; null: none.</param>
    /// <param name="order">Which block runs at each position (reordering, e.g. swaps); null: every block in order.
    /// Hook points are named by position.</param>
    /// <param name="branches">If given, receives each sublayer's connection and branch, in order.</param>
    public Tensor Forward(Tensor idx, HookSet? hooks = null, IReadOnlyList<int>? order = null,
        List<(Connection Connection, Branch Branch)>? branches = null)
    {
        long t = idx.shape[1];
        if (t > Config.BlockSize)
            throw new ArgumentException($"sequence of length {t} exceeds block_size {Config.BlockSize}");
        using var pos = arange(t, dtype: ScalarType.Int64, device: idx.device);
        var streamDtype = ln_f.weight!.dtype;
        var x = drop.call(wte.call(idx).to(streamDtype) + wpe.call(pos).to(streamDtype)); // (b, t, d)
        int depth = order?.Count ?? h.Count;
        var pass = new ResidualPass(Connection, x, new LayerContext(2 * depth, hooks) { Branches = branches }, sublayersPerLayer: 2, hookPrefix: "");
        for (int i = 0; i < depth; i++)
            h[order is null ? i : order[i]].Run(pass);
        return pass.Finish();
    }

    /// <summary>The matrix each block's attention applies to its values for <paramref name="idx"/> [b, t], one [b, nh, t, t] per block
    /// (<see cref="CausalSelfAttention.EffectiveAttention"/> of the input its connection prepared).</summary>
    public IReadOnlyList<Tensor> AttentionPatterns(Tensor idx)
    {
        using var _ = no_grad();
        var branches = new List<(Connection Connection, Branch Branch)>();
        Forward(idx, branches: branches);
        return h.Select((block, l) => block.Attention.EffectiveAttention(branches[2 * l].Branch.Input)).ToList();
    }

    /// <summary>Token ids [b, t] to logits [b, t, vocab], with hooks at every hook point.</summary>
    public Tensor Run(Tensor idx, HookSet hooks) => Head(Forward(idx, hooks), hooks);

    /// <summary>Logits and the activations at the hook points <paramref name="names"/> selects (all if null).</summary>
    public (Tensor Logits, ActivationCache Cache) RunWithCache(Tensor idx, Func<string, bool>? names = null)
    {
        var cache = new ActivationCache();
        return (Run(idx, new HookSet().Cache(cache, names)), cache);
    }

    /// <summary>Final norm and the tied head: hidden [b, t, d] to logits [b, t, vocab] in the stream's dtype. With unit-norm
    /// weights the hidden state is already on the sphere: no norm, and the logits are scaled by s_z.</summary>
    public Tensor Head(Tensor hidden, HookSet? hooks = null)
    {
        var normalized = logit_scale is null ? ln_f.call(hidden) : hidden;
        if (hooks is not null) normalized = hooks.Run(HookNames.FinalNormalized, normalized);
        var logits = F.linear(normalized.to(wte.weight!.dtype), wte.weight!).to(hidden.dtype);
        return logit_scale is null ? logits : logits * (logit_scale * Math.Sqrt(Config.DModel)).to(hidden.dtype);
    }

    /// <summary>The final LayerNorm (direct logit attribution reads its weight, bias and epsilon).</summary>
    public LayerNorm FinalNorm => ln_f;

    /// <summary>The unembedding [vocab, d] (tied to the token embedding).</summary>
    public Tensor Unembedding => wte.weight!;

    /// <summary>
    /// Casts the weights of the matrix multiplies, the token and position embeddings and every block's
    /// attention and MLP, to <paramref name="dtype"/> (bf16 training). The LayerNorms, the connections'
    /// parameters and the residual stream keep their dtype: the embeddings and each sublayer hand their
    /// output back in the stream's dtype, and so does the head, so the loss is computed in fp32.
    /// </summary>
    public void CastMatmulWeights(ScalarType dtype)
    {
        wte.to(dtype);
        wpe.to(dtype);
        foreach (var block in h) block.CastSublayers(dtype);
    }

    /// <summary>Mean next-token cross-entropy of <paramref name="idx"/> against <paramref name="targets"/>.</summary>
    public Tensor Loss(Tensor idx, Tensor targets)
    {
        var logits = call(idx);
        return F.cross_entropy(logits.view(-1, logits.shape[^1]), targets.view(-1));
    }

    public long ParameterCount() => parameters().Sum(p => p.numel());
}

/// <summary>One transformer block: attention then MLP (or both on the block's input, in parallel), each wrapped by its own connection.</summary>
internal sealed class GptBlock : nn.Module
{
    readonly Connection conn_attn;
    readonly CausalSelfAttention attn;
    readonly Connection conn_mlp;
    readonly Mlp mlp;
    readonly bool parallel;

    public GptBlock(GptConfig c, ConnectionScheme connection, int layer, int sublayers)
        : base(nameof(GptBlock))
    {
        Func<nn.Module<Tensor, Tensor>> norm = () => nn.LayerNorm(c.DModel, bias: c.Bias);
        var needs = connection.Needs;
        bool unitNorm = needs.HasFlag(ModelNeeds.UnitNormWeights);
        parallel = needs.HasFlag(ModelNeeds.ParallelSublayers);
        var attnSite = AttentionSite(c, layer, norm);
        var mlpSite = new ConnectionSite(c.DModel, 2 * layer + 1, sublayers, norm, SublayersPerLayer: 2);
        attn = new CausalSelfAttention(c.DModel, c.NHead, c.Dropout, c.Bias, c.Init, layer, sublayers,
            mixFirstValues: c.ValueResidual && layer > 0, unitNorm: unitNorm,
            shape: needs.HasFlag(ModelNeeds.AttentionShape) ? connection.AttentionAt(attnSite) : null, blockSize: c.BlockSize);
        mlp = new Mlp(c.DModel, c.Dropout, c.Bias, c.Init, layer, sublayers, unitNorm,
            shape: needs.HasFlag(ModelNeeds.MlpShape) ? connection.MlpAt(mlpSite) : null);
        conn_attn = connection.Build(attnSite);
        conn_mlp = connection.Build(mlpSite);
        RegisterComponents();
        conn_attn.InitializeSublayer(attn);
        conn_mlp.InitializeSublayer(mlp);
    }

    /// <summary>Where block <paramref name="layer"/>'s attention sits: sublayer 2 layer of 2 per block, taking separate attention inputs.</summary>
    public static ConnectionSite AttentionSite(GptConfig c, int layer, Func<nn.Module<Tensor, Tensor>> norm) =>
        new(c.DModel, 2 * layer, 2 * c.NLayer, norm, SublayersPerLayer: 2, TakesAttentionInputs: true);

    /// <summary>Casts the attention and MLP (not the connections) to <paramref name="dtype"/>.</summary>
    public void CastSublayers(ScalarType dtype)
    {
        attn.to(dtype);
        mlp.to(dtype);
    }

    /// <summary>The attention's and the MLP's matrices with the axis unit-norm weights normalise.</summary>
    public IEnumerable<(Tensor Weight, int Axis)> UnitNormMatrices() => attn.UnitNormMatrices().Concat(mlp.UnitNormMatrices());

    public Connection AttentionConnection => conn_attn;
    public Connection MlpConnection => conn_mlp;

    /// <summary>The attention sublayer.</summary>
    public CausalSelfAttention Attention => attn;

    /// <summary>Attention then MLP, each through its connection, on the pass's stream; in a parallel block the MLP reads the
    /// block's input and writes into the stream the attention left.</summary>
    public void Run(ResidualPass pass)
    {
        int block = pass.Context.SublayerIndex / 2;   // the position in the stack names the hook points
        pass.Step(conn_attn, b => b.Attention is { } qkv
            ? attn.Forward(qkv.Query, qkv.Key, qkv.Value, pass.Context)
            : attn.call(b.Input, pass.Context), HookNames.AttnOut(block));
        pass.Step(conn_mlp, b => mlp.call(b.Input), HookNames.MlpOut(block), parallel: parallel);
    }
}
