using ResidualLab.Connections;
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
/// </summary>
public sealed class Gpt : nn.Module<Tensor, Tensor>
{
    readonly Embedding wte;
    readonly Embedding wpe;
    readonly Dropout drop;
    readonly ModuleList<GptBlock> h;
    readonly LayerNorm ln_f;

    public GptConfig Config { get; }
    public ConnectionSpec Connection { get; }

    public Gpt(GptConfig config, ConnectionSpec connection) : base(Loaded(nameof(Gpt)))
    {
        Config = config;
        Connection = connection;
        int sublayers = 2 * config.NLayer;
        wte = nn.Embedding(config.VocabSize, config.DModel);
        wpe = nn.Embedding(config.BlockSize, config.DModel);
        drop = nn.Dropout(config.Dropout);
        h = new ModuleList<GptBlock>(Enumerable.Range(0, config.NLayer)
            .Select(i => new GptBlock(config, connection, i, sublayers)).ToArray());
        ln_f = nn.LayerNorm(config.DModel, bias: config.Bias);
        RegisterComponents();
        Init.Embedding(wte, config.Init);
        Init.Embedding(wpe, config.Init);
    }

    static string Loaded(string name)
    {
        Native.TorchRuntime.EnsureLoaded();
        return name;
    }

    public IReadOnlyList<GptBlock> Blocks => h.ToList();

    /// <summary>Token ids [b, t] to logits [b, t, vocab].</summary>
    public override Tensor forward(Tensor idx) => Head(Forward(idx, null));

    /// <summary>
    /// Called with each forward pass's context after the last block (its History holds resid_pre, resid_mid
    /// and resid_post of every block); probes set it for one step and clear it. Null: no call.
    /// </summary>
    public Action<LayerContext>? ForwardTap { get; set; }

    /// <summary>Runs the embeddings and blocks; returns the final residual stream [b, t, d] after Reduce.</summary>
    /// <param name="observe">Called with (block index, resid_post) after each block, if given.</param>
    /// <param name="plan">Which block runs at each depth, -1 for the identity on the stream (lesions, swaps);
    /// null: every block in order. Entries are positions, so <paramref name="observe"/> gets the position.</param>
    public Tensor Forward(Tensor idx, Action<int, Tensor>? observe, IReadOnlyList<int>? plan = null)
    {
        long t = idx.shape[1];
        if (t > Config.BlockSize)
            throw new ArgumentException($"sequence of length {t} exceeds block_size {Config.BlockSize}");
        using var pos = arange(t, dtype: ScalarType.Int64, device: idx.device);
        var streamDtype = ln_f.weight!.dtype;
        var x = drop.call(wte.call(idx).to(streamDtype) + wpe.call(pos).to(streamDtype)); // (b, t, d)
        var stream = Connection.Expand(x);
        var ctx = new LayerContext(2 * Config.NLayer);
        ctx.History.Add(stream);
        int depth = plan?.Count ?? h.Count;
        for (int i = 0; i < depth; i++)
        {
            int block = plan is null ? i : plan[i];
            if (block >= 0)
                stream = h[block].call(stream, ctx);
            else
                for (int sublayer = 0; sublayer < 2; sublayer++)
                {
                    ctx.Advance();
                    ctx.History.Add(stream);
                }
            observe?.Invoke(i, stream);
        }
        ForwardTap?.Invoke(ctx);
        return Connection.Reduce(stream);
    }

    /// <summary>Final norm and the tied head: hidden [b, t, d] to logits [b, t, vocab] in the stream's dtype.</summary>
    public Tensor Head(Tensor hidden) => F.linear(ln_f.call(hidden).to(wte.weight!.dtype), wte.weight!).to(hidden.dtype);

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

/// <summary>One transformer block: attention then MLP, each wrapped by its own connection.</summary>
public sealed class GptBlock : nn.Module<Tensor, LayerContext, Tensor>
{
    readonly Connection conn_attn;
    readonly CausalSelfAttention attn;
    readonly Connection conn_mlp;
    readonly Mlp mlp;

    public GptBlock(GptConfig c, ConnectionSpec connection, int layer, int sublayers)
        : base(nameof(GptBlock))
    {
        Func<nn.Module<Tensor, Tensor>> norm = () => nn.LayerNorm(c.DModel, bias: c.Bias);
        attn = new CausalSelfAttention(c.DModel, c.NHead, c.Dropout, c.Bias, c.Init, layer, sublayers, mixFirstValues: c.ValueResidual && layer > 0);
        mlp = new Mlp(c.DModel, c.Dropout, c.Bias, c.Init, layer, sublayers);
        conn_attn = connection.Build(new ConnectionSite(c.DModel, 2 * layer, sublayers, norm, SublayersPerLayer: 2));
        conn_mlp = connection.Build(new ConnectionSite(c.DModel, 2 * layer + 1, sublayers, norm, SublayersPerLayer: 2));
        RegisterComponents();
        conn_attn.InitializeSublayer(attn);
        conn_mlp.InitializeSublayer(mlp);
    }

    /// <summary>Casts the attention and MLP (not the connections) to <paramref name="dtype"/>.</summary>
    public void CastSublayers(ScalarType dtype)
    {
        attn.to(dtype);
        mlp.to(dtype);
    }

    public Connection AttentionConnection => conn_attn;
    public Connection MlpConnection => conn_mlp;

    public override Tensor forward(Tensor h, LayerContext ctx)
    {
        var a = conn_attn.Prepare(h, ctx);        // resid_pre
        h = conn_attn.Combine(attn.call(a.Input, ctx), a, ctx);
        ctx.Advance();
        ctx.History.Add(h);                        // resid_mid
        var m = conn_mlp.Prepare(h, ctx);
        h = conn_mlp.Combine(mlp.call(m.Input), m, ctx);
        ctx.Advance();
        ctx.History.Add(h);                        // resid_post
        return h;
    }
}
