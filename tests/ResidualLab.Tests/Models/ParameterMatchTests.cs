using ResidualLab.Config;
using ResidualLab.Connections;
using ResidualLab.Models;
using ResidualLab.Training.Tasks;
using static TorchSharp.torch;

namespace ResidualLab.Tests.Models;

public class ParameterMatchTests
{
    static readonly GptConfig Base = new(VocabSize: 60, NLayer: 3, DModel: 64, NHead: 4, BlockSize: 16);

    [Theory]
    [InlineData("pre-norm", "highway")]   // highway's gates add a d x d matrix per sublayer: pre-norm must widen
    [InlineData("highway", "pre-norm")]   // and the other way round, narrow
    [InlineData("none", "mhc")]
    public void The_chosen_width_brings_the_parameters_within_two_percent(string own, string target)
    {
        var ownSpec = ConnectionCatalog.Create(own);
        var targetSpec = ConnectionCatalog.Create(target);
        long goal = ParameterMatch.Count(Base, targetSpec);
        var matched = ParameterMatch.Width(Base, ownSpec, targetSpec);
        long got = ParameterMatch.Count(matched, ownSpec);
        Assert.InRange((double)got / goal, 1 - ParameterMatch.Tolerance, 1 + ParameterMatch.Tolerance);
        Assert.Equal(0, matched.DModel % matched.NHead);
        double before = (double)ParameterMatch.Count(Base, ownSpec) / goal;
        if (Math.Abs(before - 1) > ParameterMatch.Tolerance) Assert.NotEqual(Base.DModel, matched.DModel);
    }

    [Fact]
    public void Schemes_already_of_equal_size_keep_their_width_and_heads()
    {
        // none keeps each sublayer's LayerNorm: the same parameters as pre-norm.
        Assert.Equal(Base, ParameterMatch.Width(Base, ConnectionCatalog.Create("none"), ConnectionCatalog.Create("pre-norm")));
    }

    [Fact]
    public void Matching_leaves_the_initialisation_draws_unchanged_and_records_the_width()
    {
        var plain = TestSupport.TinyConfig("connection.name=pre-norm");
        var matched = TestSupport.TinyConfig("connection.name=pre-norm", "model.match_params=pre-norm");
        Assert.NotEqual(plain.RunId, matched.RunId);
        var corpus = TestSupport.TinyCorpus(plain.Gpt.Shape.BlockSize);
        using var a = new LanguageModelTask(plain, plain.Gpt, corpus, CPU);
        using var b = new LanguageModelTask(matched, matched.Gpt, corpus, CPU);
        Assert.Equal(a.Model.parameters().Select(p => p.sum().item<float>()), b.Model.parameters().Select(p => p.sum().item<float>()));
        var bad = new ConfigValues();
        bad.Override("model.match_params=highwya");
        Assert.Contains("did you mean 'highway'", Assert.Throws<ConfigException>(() => RunConfig.From(bad)).Message);
    }
}
