using System.Reflection;
using ResidualLab.Connections;

namespace ResidualLab.Tests.Connections;

/// <summary>
/// The library's typed schemes: every public scheme record is in the catalog under its name with the same defaults,
/// states its FLOPs, and refuses an option out of range where it is made, naming the option as configs spell it.
/// </summary>
public class SchemeRecordTests
{
    static IEnumerable<ConnectionScheme> DefaultRecords() =>
        typeof(ConnectionScheme).Assembly.GetTypes()
            .Where(t => t.IsPublic && !t.IsAbstract && t.IsSubclassOf(typeof(ConnectionScheme)))
            .Select(t => t.GetConstructors().Single(c => c.GetParameters().All(p => p.HasDefaultValue)))
            .Select(c => (ConnectionScheme)c.Invoke(c.GetParameters().Select(p => p.DefaultValue).ToArray()));

    [Fact]
    public void Every_public_scheme_record_is_in_the_catalog_with_the_same_defaults()
    {
        var records = DefaultRecords().ToList();
        Assert.Equal(ConnectionCatalog.Names.Order(), records.Select(r => r.Name).Order());
        foreach (var record in records)
            Assert.Equal(record, ConnectionCatalog.Create(record.Name));
    }

    [Fact]
    public void Every_scheme_counts_its_forward_flops()
    {
        var site = new ConnectionSite(64, SublayerIndex: 3, SublayerCount: 8, () => TorchSharp.torch.nn.LayerNorm(64), SublayersPerLayer: 2);
        foreach (var record in DefaultRecords())
            Assert.True(record.ForwardFlops(site) is var f && double.IsFinite(f) && f >= 0, $"{record.Name}: {record.ForwardFlops(site)}");
    }

    public static TheoryData<Func<ConnectionScheme>, string, string> OutOfRange => new()
    {
        { () => new ManifoldHyperConnectionsScheme(N: 0), "n", "mhc: n must be in [1, 64], got 0" },
        { () => new ManifoldHyperConnectionsScheme(SinkhornIterations: 0), "sinkhorn_iters", "mhc: sinkhorn_iters must be in [1, 10000], got 0" },
        { () => new KromHcScheme(N: 6), "n", "kromhc: n must be a power of two, got 6" },
        { () => new LaurelScheme(Variant: "xx"), "variant", "laurel: variant must be one of rw, lr, pa, got 'xx'" },
        { () => new MixLnScheme(PostFraction: 1.5), "post_fraction", "mix-ln: post_fraction must be in [0, 1], got 1.5" },
        { () => new LayerScaleScheme(Init: double.NaN), "init", "layerscale: init must be in [0, 10], got NaN" },
        { () => new ESpaScheme(gamma: 0), "gamma", "e-spa: gamma must be in [0.0001, 10], got 0" },
        { () => new USpaScheme(rho: 1), "rho", "u-spa: rho must be in [0.01, 0.99], got 1" },
        { () => new ValueSkipInitScheme(Eta: 1), "eta", "value-skipinit: eta must be in [0, 0.99], got 1" },
        { () => new SasScheme(MlpGain: -1), "mlp_gain", "sas: mlp_gain must be in [0, 10], got -1" },
    };

    [Theory]
    [MemberData(nameof(OutOfRange))]
    public void An_option_out_of_range_is_an_argument_exception_naming_the_option(Func<ConnectionScheme> make, string key, string message)
    {
        var ex = Assert.Throws<ArgumentOutOfRangeException>(make);
        Assert.Equal(key, ex.ParamName);
        Assert.StartsWith(message, ex.Message);
    }

    [Fact]
    public void The_catalog_names_the_option_a_config_gave_wrong()
    {
        var wrongType = Assert.Throws<ArgumentException>(() => ConnectionCatalog.Create("mhc", new Dictionary<string, object> { ["n"] = "four" }));
        Assert.Equal("n", wrongType.ParamName);
        var unknown = Assert.Throws<ArgumentException>(() => ConnectionCatalog.Create("mhc", new Dictionary<string, object> { ["nn"] = 4L }));
        Assert.Equal("nn", unknown.ParamName);
        Assert.Contains("did you mean 'n'", unknown.Message);
        var name = Assert.Throws<ArgumentException>(() => ConnectionCatalog.Create("mhx"));
        Assert.Equal("name", name.ParamName);
        Assert.Contains("did you mean 'mhc'", name.Message);
    }
}
