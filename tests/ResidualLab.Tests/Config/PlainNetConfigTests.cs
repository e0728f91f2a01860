using ResidualLab.Config;
using ResidualLab.Models;

namespace ResidualLab.Tests.Config;

/// <summary>model.init = delta-orthogonal, model.activation = tat, model.tat_eta, model.batch_norm and model.name = repvgg: what each applies to, and one line where it does not.</summary>
public class PlainNetConfigTests
{
    static RunConfig From(params string[] overrides)
    {
        var v = new ConfigValues();
        foreach (var o in overrides) v.Override(o);
        return RunConfig.From(v);
    }

    static readonly string[] Plain = ["model.name=plain", "connection.name=none", "connection.norm=false"];
    static readonly string[] Tat = [.. Plain, "model.init=delta-orthogonal", "model.batch_norm=false", "model.activation=tat"];

    [Fact]
    public void A_plain_net_takes_delta_orthogonal_init_and_TAT()
    {
        var config = From([.. Tat, "model.tat_eta=0.8", "model.depth=56"]);
        Assert.Equal(new VisionLayers(VisionInit.DeltaOrthogonal, BatchNorm: false, TatEta: 0.8), config.Vision!.Model.Layers);
        Assert.Equal("plain-56 none delta-orthogonal no-bn tat(0.8) s1337", config.Label);
        Assert.Contains("model.activation=\"tat\"", config.Canonical);

        var mlp = From("model.name=mlp", "connection.name=none", "connection.norm=false", "model.init=delta-orthogonal", "model.depth=16");
        Assert.Equal(new VisionLayers(VisionInit.DeltaOrthogonal), mlp.Vision!.Model.Layers);
    }

    [Fact]
    public void The_default_layers_leave_every_earlier_run_id_as_it_was()
    {
        var before = From(Plain);
        var explicitDefaults = From([.. Plain, "model.batch_norm=true", "model.activation=relu", "model.tat_eta=0.9"]);
        Assert.Equal(before.RunId, explicitDefaults.RunId);
        Assert.DoesNotContain("model.activation", before.Canonical);
        Assert.Equal(VisionLayers.Paper, before.Vision!.Model.Layers);
    }

    [Theory]
    [InlineData("model.init=delta-orthogonal", "model.init = delta-orthogonal is for the vision models' nets without shortcuts")]
    [InlineData("model.activation=tat", "model.activation is for the vision models")]
    [InlineData("model.batch_norm=false", "model.batch_norm is for the vision models")]
    public void The_GPT_refuses_the_plain_net_methods_in_one_line(string setting, string message)
    {
        var ex = Assert.Throws<ConfigException>(() => From(setting));
        Assert.Contains(message, ex.Message);
        Assert.StartsWith($"--set {setting.Split('=')[0]}", ex.Message);
        Assert.DoesNotContain("\n", ex.Message);
    }

    [Theory]
    [InlineData("model.name=resnet|connection.name=residual|model.init=delta-orthogonal", "--set model.init: model.init = delta-orthogonal applies to nets without shortcuts")]
    [InlineData("model.name=mlp|connection.name=residual|model.init=delta-orthogonal", "a shortcut adds the identity to every block")]
    [InlineData("model.name=plain|connection.name=none|model.init=delta-orthogonal", "connection.name = none (norm = true)")]
    [InlineData("model.name=resnet|connection.name=residual|model.batch_norm=false|model.init=delta-orthogonal|model.activation=tat", "applies to nets without shortcuts")]
    [InlineData("model.name=plain|connection.name=none|connection.norm=false|model.init=delta-orthogonal|model.activation=tat", "model.activation = tat needs model.batch_norm = false")]
    [InlineData("model.name=plain|connection.name=none|connection.norm=false|model.batch_norm=false|model.activation=tat", "model.activation = tat needs model.init = delta-orthogonal")]
    [InlineData("model.name=plain|connection.name=none|connection.norm=false|model.init=delta-orthogonal|model.batch_norm=false|model.activation=tat|model.depth=8",
        "--set model.depth: model.activation = tat at depth 8 (7 activations) cannot reach C_f(0) = 0.9 (model.tat_eta): even ReLU, its most nonlinear choice, gives 0.809")]
    [InlineData("model.name=plain|model.tat_eta=0.8", "model.tat_eta is TAT's target; it needs model.activation = tat")]
    [InlineData("model.name=plain|model.activation=tat|model.tat_eta=1.5", "'model.tat_eta' must be in (0, 1)")]
    [InlineData("model.name=plain|model.activation=gelu", "'model.activation' must be relu or tat")]
    [InlineData("model.name=plain|model.init=pytorch", "gpt2, pytorch and ds-init are the GPT's")]
    [InlineData("model.name=repvgg", "repvgg's blocks carry their own branches")]
    [InlineData("model.name=repvgg|connection.name=none|connection.norm=false|model.init=delta-orthogonal", "does not apply to repvgg")]
    [InlineData("model.name=repvgg|connection.name=none|connection.norm=false|model.batch_norm=false", "repvgg's branches are batch-normalised by definition")]
    public void A_method_asked_of_a_net_it_does_not_apply_to_is_one_line_naming_the_key(string settings, string message)
    {
        var ex = Assert.Throws<ConfigException>(() => From(settings.Split('|')));
        Assert.Contains(message, ex.Message);
        Assert.DoesNotContain("\n", ex.Message);
    }

    [Fact]
    public void RepVGG_is_a_family_of_6n_plus_2_layers()
    {
        var config = From("model.name=repvgg", "connection.name=none", "connection.norm=false", "model.depth=20");
        Assert.Equal("repvgg", config.Vision!.Model.Family);
        Assert.Contains("6n+2", Assert.Throws<ConfigException>(() => From("model.name=repvgg", "connection.name=none", "connection.norm=false", "model.depth=21")).Message);
    }
}
