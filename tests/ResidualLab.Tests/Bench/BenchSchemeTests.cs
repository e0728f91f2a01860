using ResidualLab.Bench;
using ResidualLab.Connections;

namespace ResidualLab.Tests.Bench;

public class BenchSchemeTests
{
    [Fact]
    public void A_scheme_with_options_parses_to_its_spec()
    {
        Assert.Equal(new HyperConnectionsScheme(2, Dynamic: false), BenchScheme.Parse("hyper-connections:n=2:dynamic=false").Scheme);
        Assert.Equal(new ManifoldHyperConnectionsScheme(AlphaInit: 0.1), BenchScheme.Parse(" mhc:alpha_init=0.1 ").Scheme);
        Assert.Equal(new PreNormScheme(), BenchScheme.Parse("pre-norm").Scheme);
    }

    [Theory]
    [InlineData("mhc:n", "expected name:key=value")]
    [InlineData("mhc:n=x", "scheme 'mhc:n=x': mhc: n must be an integer, got 'x'")]
    [InlineData("mhx", "did you mean 'mhc'")]
    public void A_bad_scheme_is_one_clear_error(string text, string message) =>
        Assert.Contains(message, Assert.Throws<ConfigException>(() => BenchScheme.Parse(text)).Message);

    [Fact]
    public void The_default_list_holds_every_scheme_once_and_the_option_variants()
    {
        var labels = BenchScheme.Defaults.Select(s => s.Label).ToList();
        Assert.Equal(labels.Distinct().Count(), labels.Count);
        Assert.Subset(labels.ToHashSet(), ConnectionCatalog.Names.ToHashSet());
        Assert.Contains("hyper-connections:dynamic=false", labels);
    }
}
