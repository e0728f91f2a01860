using System.Globalization;
using ResidualLab.Connections;
using ResidualLab.Data;
using ResidualLab.Training;

namespace ResidualLab.Tests.Connections;

/// <summary>Every scheme, selected through the config as a user would, trains a small GPT.</summary>
[Collection(ConnectionsCollection.Name)]
[Trait(Slow.Category, Slow.Value)]
public class SchemeTrainingTests
{
    sealed class Recorder : ITrainingObserver
    {
        public List<double> Losses { get; } = [];
        public void OnStep(StepMetrics step) => Losses.Add(step.Loss);
    }

    static string[] ConfigLines(ConnectionScheme scheme) =>
        scheme.Options.Select(o => $"connection.{o.Key}={o.Value switch
        {
            bool b => b ? "true" : "false",
            double d => d.ToString("R", CultureInfo.InvariantCulture),
            var v => Convert.ToString(v, CultureInfo.InvariantCulture),
        }}").Prepend($"connection.name={scheme.Name}").ToArray();

    [Theory]
    [MemberData(nameof(Schemes.Labels), MemberType = typeof(Schemes))]
    public void Every_scheme_trains_a_four_layer_gpt(string label)
    {
        var scheme = Schemes.Get(label);
        var config = TestSupport.TinyConfig([.. ConfigLines(scheme), "model.n_layer=4", "model.d_model=16", "train.max_iters=200"]);
        Assert.Equal(scheme, config.Connection); // the config selects exactly this scheme and its options
        // Train and validation only: the scheme's ability to leave the unigram plateau is judged on 90% of the text.
        var corpus = CharCorpus.FromText(TestSupport.TinyText(), 0.1, config.Gpt.Shape.BlockSize, "tiny");
        var (task, trainer) = TestSupport.GptTrainer(config, corpus);
        var recorder = new Recorder();
        var result = trainer.Run(recorder);
        task.Dispose();

        Assert.Equal(RunStatus.Done, result.Status);
        var losses = recorder.Losses;
        Assert.All(losses, l => Assert.True(double.IsFinite(l)));
        double first = losses.Take(5).Average(), last = losses.TakeLast(20).Average();
        Assert.True(last < first - 0.5, $"{label}: loss {first:0.000} -> {last:0.000}");
    }

    [Fact]
    public void The_tests_cover_every_scheme_of_the_catalog()
    {
        Assert.Equal(ConnectionCatalog.Names.Order(), Schemes.All.Select(s => s.Scheme.Name).Distinct().Order());
    }

    [Fact]
    public void Every_scheme_round_trips_through_its_options()
    {
        foreach (var (_, scheme) in Schemes.All)
            Assert.Equal(scheme, ConnectionCatalog.Create(scheme.Name, scheme.Options));
        foreach (var entry in ConnectionCatalog.All) // defaults declared in the catalog are the scheme's defaults
            Assert.Equal(entry.Options.Select(o => o.Key).Order(), ConnectionCatalog.Create(entry.Name).Options.Keys.Order());
    }

    [Theory]
    [InlineData("mhc", "n", "0", "--set connection.n: mhc: n must be in [1, 64], got 0")]
    [InlineData("hyper-connections", "dynamic", "yes", "--set connection.dynamic: hyper-connections: dynamic must be true or false")]
    [InlineData("rezero", "init", "0.1", "does not apply to 'rezero'")]
    public void Bad_options_are_one_clear_error(string scheme, string key, string value, string message)
    {
        var ex = Assert.Throws<ConfigException>(() =>
            TestSupport.TinyConfig($"connection.name={scheme}", $"connection.{key}={value}"));
        Assert.Contains(message, ex.Message);
    }
}
