// A Transformer of our own, with an attention that takes a mask, whose residual connections come from ResidualLab:
// it learns to repeat the previous token, which only attention can do. The scheme is typed in code (mHC with 4
// streams) unless one is named:   dotnet run -- [SCHEME] [--steps N]      e.g. dotnet run -- hyper-connections
using ResidualLab.Connections;
using ResidualLab.Native;
using TorchSharp.Modules;
using static TorchSharp.torch;

string name = args.Length > 0 && !args[0].StartsWith('-') ? args[0] : "mhc";
int steps = args.SkipWhile(a => a != "--steps").Skip(1).Select(int.Parse).FirstOrDefault(150);
TorchRuntime.EnsureLoaded();   // before the first torch call: makes libtorch load on hosts such as Debian 12
manual_seed(1);
ConnectionScheme scheme;
CopyTransformer model;
try
{
    scheme = name == "mhc" ? new ManifoldHyperConnectionsScheme(N: 4) : ConnectionCatalog.Create(name);
    model = new CopyTransformer(scheme, vocab: 16, width: 32, layers: 2, heads: 4);
}
catch (ArgumentException ex)                                                      // an unknown scheme, or one this model cannot take
{
    Console.Error.WriteLine($"CopyTransformer: error: {ex.Message}");
    return 2;
}
var optimizer = optim.AdamW(model.parameters(), lr: 3e-3);
for (int step = 1; step <= steps; step++)
{
    using var _ = NewDisposeScope();
    var tokens = randint(0, 16, [32, 24]);
    var logits = model.call(tokens)[.., 1..];                                     // position t predicts token t - 1
    var loss = nn.functional.cross_entropy(logits.reshape(-1, 16), tokens[.., ..^1].reshape(-1));
    optimizer.zero_grad(); loss.backward(); optimizer.step();
    if (step % 50 == 0 || step == steps) Console.WriteLine($"{scheme.Name} step {step,4}  loss {loss.item<float>():F4}");
}
return 0;

/// <summary>Embeddings, layers of attention and MLP wired by the scheme, a final norm and a head.</summary>
sealed class CopyTransformer : nn.Module<Tensor, Tensor>
{
    readonly Embedding tokens, positions;
    readonly ModuleList<Attention> attention;
    readonly ModuleList<Sequential> mlp;
    readonly ResidualConnections residual;   // one connection per sublayer: 2 per layer
    readonly Sequential head;

    public CopyTransformer(ConnectionScheme scheme, int vocab, int width, int layers, int heads) : base(nameof(CopyTransformer))
    {
        (tokens, positions) = (nn.Embedding(vocab, width), nn.Embedding(64, width));
        attention = nn.ModuleList(Enumerable.Range(0, layers).Select(_ => new Attention(width, heads)).ToArray());
        mlp = nn.ModuleList(Enumerable.Range(0, layers).Select(_ => nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width))).ToArray());
        residual = new ResidualConnections(scheme, width, sublayers: 2 * layers, sublayersPerLayer: 2);
        head = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, vocab));
        RegisterComponents();
    }

    public override Tensor forward(Tensor idx)                          // [b, t] -> [b, t, vocab]
    {
        var mask = ones(idx.shape[1], idx.shape[1], dtype: ScalarType.Bool).tril();   // causal: position i sees j <= i
        var pass = residual.Begin(tokens.call(idx) + positions.call(arange(idx.shape[1])));
        for (int l = 0; l < attention.Count; l++)
        {
            pass.Step(residual[2 * l], b => attention[l].call(b.Input, mask));
            pass.Step(residual[2 * l + 1], b => mlp[l].call(b.Input));
        }
        return head.call(pass.Finish());
    }
}

/// <summary>Multi-head self-attention under a boolean mask: [b, t, d] and [t, t] to [b, t, d].</summary>
sealed class Attention : nn.Module<Tensor, Tensor, Tensor>
{
    readonly Linear qkv, proj;
    readonly int heads;

    public Attention(int width, int heads) : base(nameof(Attention))
    {
        (qkv, proj, this.heads) = (nn.Linear(width, 3 * width), nn.Linear(width, width), heads);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x, Tensor mask)
    {
        long b = x.shape[0], t = x.shape[1], d = x.shape[2];
        var q_k_v = qkv.call(x).view(b, t, 3, heads, d / heads).permute(2, 0, 3, 1, 4);   // [3, b, h, t, d/h]
        var y = nn.functional.scaled_dot_product_attention(q_k_v[0], q_k_v[1], q_k_v[2], attn_mask: mask);
        return proj.call(y.transpose(1, 2).reshape(b, t, d));
    }
}
