using ResidualLab.Connections;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace ResidualLab.Tests.Connections;

/// <summary>Every scheme of the catalog, with the variants its options select, as the tests run them.</summary>
static class Schemes
{
    public static IReadOnlyList<(string Label, ConnectionSpec Spec)> All { get; } =
    [
        ("none", new NoResidualSpec()),
        ("none norm=false", new NoResidualSpec(Norm: false)),
        ("pre-norm", new PreNormSpec()),
        ("post-norm", new PostNormSpec()),
        ("residual", new ResidualSpec()),
        ("sandwich", new SandwichSpec()),
        ("rezero", new ReZeroSpec()),
        ("skipinit", new SkipInitSpec()),
        ("layerscale", new LayerScaleSpec()),
        ("deepnorm", new DeepNormSpec()),
        ("highway", new HighwaySpec()),
        ("denseformer", new DenseFormerSpec()),
        ("hyper-connections static n=2", new HyperConnectionsSpec(2, Dynamic: false)),
        ("hyper-connections dynamic n=2", new HyperConnectionsSpec(2, Dynamic: true)),
        ("mhc n=2", new ManifoldHyperConnectionsSpec(2)),
        ("layernorm-scaling", new LayerNormScalingSpec()),
        ("mix-ln post_fraction=0.5", new MixLnSpec(0.5)),
        ("orthogonal", new OrthogonalSpec()),
        ("completep", new CompletePSpec()),
        ("completep alpha=0.5", new CompletePSpec(Alpha: 0.5)),
        ("laurel rw", new LaurelSpec("rw")),
        ("laurel lr rank=2", new LaurelSpec("lr", Rank: 2)),
        ("laurel pa previous=2", new LaurelSpec("pa", Previous: 2)),
        ("resi-dual", new ResiDualSpec()),
        ("mhc-lite n=3", new MhcLiteSpec(3)),
        ("kromhc n=4", new KromHcSpec(4)),
        ("frac-connections static fracs=2", new FracConnectionsSpec(2, Dynamic: false)),
        ("frac-connections dynamic fracs=2", new FracConnectionsSpec(2)),
        ("deep-delta", new DeepDeltaSpec()),
        ("attn-res", new AttentionResidualsSpec()),
        ("attn-res blocks=2", new AttentionResidualsSpec(2)),
        ("admin", new AdminSpec()),
        ("ngpt", new NGptSpec()),
        ("mudd", new MuddSpec()),
        ("dca", new DeepCrossAttentionSpec()),
    ];

    public static TheoryData<string> Labels => new(All.Select(s => s.Label));

    public static ConnectionSpec Get(string label) => All.Single(s => s.Label == label).Spec;
}

/// <summary>A sublayer small enough for finite differences: y = tanh(W x + c).</summary>
sealed class TinySublayer : nn.Module<Tensor, Tensor>, IResidualSublayer
{
    readonly Linear fc;

    public TinySublayer(int width) : base(nameof(TinySublayer))
    {
        fc = nn.Linear(width, width);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x) => fc.call(x).tanh();

    public void ScaleResidualWeights(double gain)
    {
        using var _ = no_grad();
        fc.weight!.mul_(gain);
    }
}

/// <summary>
/// A model-free stack of residual sublayers wired by one scheme, the way every model does it:
/// Expand, then Prepare / sublayer / Combine per sublayer (recording History), then Reduce.
/// </summary>
sealed class TinyStack : nn.Module<Tensor, Tensor>
{
    readonly ModuleList<TinySublayer> layers;
    readonly ModuleList<Connection> connections;
    readonly ConnectionSpec spec;

    public TinyStack(ConnectionSpec spec, int width, int depth) : base(nameof(TinyStack))
    {
        this.spec = spec;
        layers = new ModuleList<TinySublayer>(Enumerable.Range(0, depth).Select(_ => new TinySublayer(width)).ToArray());
        connections = new ModuleList<Connection>(Enumerable.Range(0, depth)
            .Select(k => spec.Build(new ConnectionSite(width, k, depth, () => nn.LayerNorm(width)))).ToArray());
        RegisterComponents();
        for (int k = 0; k < depth; k++) connections[k].InitializeSublayer(layers[k]);
    }

    public override Tensor forward(Tensor x)
    {
        var stream = spec.Expand(x);
        var ctx = new LayerContext(layers.Count);
        ctx.History.Add(stream);
        for (int k = 0; k < layers.Count; k++)
        {
            var branch = connections[k].Prepare(stream, ctx);
            stream = connections[k].Combine(layers[k].call(branch.Input), branch, ctx);
            ctx.Advance();
            ctx.History.Add(stream);
        }
        return spec.Reduce(stream);
    }
}
