using ResidualLab.Config;
using ResidualLab.Connections;

namespace ResidualLab.Tests.Config;

/// <summary>The presets in configs/: each parses, and the sweeps plan the runs their headers promise.</summary>
public class PresetTests
{
    static string Preset(string name) => Path.Combine(TestSupport.RepoRoot(), "configs", name + ".toml");

    [Fact]
    public void Every_preset_parses_and_every_sweep_plans_its_runs()
    {
        var files = Directory.GetFiles(Path.Combine(TestSupport.RepoRoot(), "configs"), "*.toml");
        Assert.NotEmpty(files);
        foreach (var file in files)
        {
            var values = ConfigValues.FromTomlFile(file);
            _ = RunConfig.From(values);
            if (values.SweepEntries.Count > 0) Assert.NotEmpty(SweepGrid.Expand(values).Runs);
        }
    }

    [Fact]
    public void The_schemes_preset_trains_every_scheme_in_the_catalog_at_three_learning_rates_and_three_seeds()
    {
        var plan = SweepGrid.Expand(ConfigValues.FromTomlFile(Preset("schemes")));
        var schemes = plan.Runs.Select(r => r.Connection.Name).Distinct().Order().ToList();
        Assert.Equal(ConnectionCatalog.Names.Order(), schemes);
        Assert.Equal(schemes.Count * 3 * 3, plan.Runs.Count);
        Assert.Equal(["train.lr"], plan.TunedKeys);
    }

    [Theory]
    [InlineData("seed-1layer-bpe", 2 * 3 * 3)]
    [InlineData("connections-bpe", 5 * 2 * 3 * 3)]
    [InlineData("connections", 5 * 2 * 3 * 3)]
    public void The_token_level_and_connections_sweeps_tune_the_learning_rate(string preset, int runs)
    {
        var plan = SweepGrid.Expand(ConfigValues.FromTomlFile(Preset(preset)));
        Assert.Equal(runs, plan.Runs.Count);
        Assert.Equal(["train.lr"], plan.TunedKeys);
    }
}
