using ResidualLab.Connections;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace ResidualLab.Tests.Connections;

/// <summary>Every scheme of the catalog, with the variants its options select, as the tests run them.</summary>
static class Schemes
{
    public static IReadOnlyList<(string Label, ConnectionScheme Scheme)> All { get; } =
    [
        ("none", new NoResidualScheme()),
        ("none norm=false", new NoResidualScheme(Norm: false)),
        ("pre-norm", new PreNormScheme()),
        ("post-norm", new PostNormScheme()),
        ("residual", new ResidualScheme()),
        ("sandwich", new SandwichScheme()),
        ("rezero", new ReZeroScheme()),
        ("skipinit", new SkipInitScheme()),
        ("layerscale", new LayerScaleScheme()),
        ("deepnorm", new DeepNormScheme()),
        ("highway", new HighwayScheme()),
        ("denseformer", new DenseFormerScheme()),
        ("hyper-connections static n=2", new HyperConnectionsScheme(2, Dynamic: false)),
        ("hyper-connections dynamic n=2", new HyperConnectionsScheme(2, Dynamic: true)),
        ("mhc n=2", new ManifoldHyperConnectionsScheme(2)),
        ("layernorm-scaling", new LayerNormScalingScheme()),
        ("mix-ln post_fraction=0.5", new MixLnScheme(0.5)),
        ("orthogonal", new OrthogonalScheme()),
        ("completep", new CompletePScheme()),
        ("completep alpha=0.5", new CompletePScheme(Alpha: 0.5)),
        ("laurel rw", new LaurelScheme("rw")),
        ("laurel lr rank=2", new LaurelScheme("lr", Rank: 2)),
        ("laurel pa previous=2", new LaurelScheme("pa", Previous: 2)),
        ("resi-dual", new ResiDualScheme()),
        ("mhc-lite n=3", new MhcLiteScheme(3)),
        ("kromhc n=4", new KromHcScheme(4)),
        ("frac-connections static fracs=2", new FracConnectionsScheme(2, Dynamic: false)),
        ("frac-connections dynamic fracs=2", new FracConnectionsScheme(2)),
        ("deep-delta", new DeepDeltaScheme()),
        ("attn-res", new AttentionResidualsScheme()),
        ("attn-res blocks=2", new AttentionResidualsScheme(2)),
        ("admin", new AdminScheme()),
        ("ngpt", new NGptScheme()),
        ("mudd", new MuddScheme()),
        ("dca", new DeepCrossAttentionScheme()),
        ("value-skipinit", new ValueSkipInitScheme()),
        ("value-skipinit norm=false", new ValueSkipInitScheme(Norm: false)),
        ("e-spa", new ESpaScheme()),
        ("u-spa", new USpaScheme()),
        ("sas", new SasScheme()),
        ("sas norm=false", new SasScheme(Norm: false)),
        ("sas-p", new SasPScheme()),
    ];

    public static TheoryData<string> Labels => new(All.Select(s => s.Label));

    public static ConnectionScheme Get(string label) => All.Single(s => s.Label == label).Scheme;
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
/// A model-free stack of residual sublayers wired by one scheme through the driver every model uses
/// (<see cref="ResidualPass"/>); unlike <see cref="ResidualStack"/> it takes every scheme, including those whose needs
/// it does not provide (they fall back to reading the branch's input).
/// </summary>
sealed class TinyStack : nn.Module<Tensor, Tensor>
{
    readonly ModuleList<TinySublayer> layers;
    readonly ModuleList<Connection> connections;
    readonly ConnectionScheme scheme;

    public TinyStack(ConnectionScheme scheme, int width, int depth) : base(nameof(TinyStack))
    {
        this.scheme = scheme;
        layers = new ModuleList<TinySublayer>(Enumerable.Range(0, depth).Select(_ => new TinySublayer(width)).ToArray());
        connections = new ModuleList<Connection>(Enumerable.Range(0, depth)
            .Select(k => scheme.Build(new ConnectionSite(width, k, depth, () => nn.LayerNorm(width)))).ToArray());
        RegisterComponents();
        for (int k = 0; k < depth; k++) connections[k].InitializeSublayer(layers[k]);
    }

    public override Tensor forward(Tensor x)
    {
        var pass = new ResidualPass(scheme, x, layers.Count);
        for (int k = 0; k < layers.Count; k++)
        {
            var layer = layers[k];
            pass.Step(connections[k], branch => layer.call(branch.Input));
        }
        return pass.Finish();
    }
}
