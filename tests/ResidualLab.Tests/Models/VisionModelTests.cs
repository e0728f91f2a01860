using ResidualLab.Connections;
using ResidualLab.Models;
using static TorchSharp.torch;

namespace ResidualLab.Tests.Models;

public class VisionModelTests
{
    static VisionConfig Cifar(string family, int depth, int width = 16) => new(family, depth, width, InChannels: 3, ImageSize: 32, Classes: 10);

    [Theory]
    [InlineData(20, 0.27)]
    [InlineData(56, 0.85)]
    public void ResNet_has_the_published_parameter_count(int depth, double millions)
    {
        // He et al. 2016, table 6: ResNet-20 0.27M, ResNet-56 0.85M (CIFAR-10, option A shortcuts).
        using var resnet = Cifar("resnet", depth).Build(new ResidualScheme());
        using var plain = Cifar("plain", depth).Build(new NoResidualScheme(Norm: false));

        Assert.Equal(millions, Math.Round(resnet.ParameterCount() / 1e6, 2));
        Assert.Equal(resnet.ParameterCount(), plain.ParameterCount()); // option A is parameter-free
    }

    [Theory]
    [InlineData("resnet", 20)]
    [InlineData("plain", 32)]
    [InlineData("mlp", 16)]
    public void Depth_counts_the_layers_with_weights(string family, int depth)
    {
        using var model = Cifar(family, depth, width: 4).Build(new ResidualScheme());
        Assert.Equal(depth, model.WeightLayers.Count);
        Assert.Equal(family == "mlp" ? "input" : "conv1", model.WeightLayers[0].Name);
        Assert.Equal("fc", model.WeightLayers[^1].Name);
    }

    [Theory]
    [InlineData("resnet", "residual")]
    [InlineData("plain", "none")]
    [InlineData("resnet", "pre-norm")]
    [InlineData("resnet", "post-norm")]
    [InlineData("mlp", "residual")]
    [InlineData("mlp", "pre-norm")]
    public void Images_become_logits_for_every_scheme(string family, string scheme)
    {
        manual_seed(1);
        using var model = new VisionConfig(family, family == "mlp" ? 6 : 8, 4, InChannels: 1, ImageSize: 28, Classes: 10)
            .Build(ConnectionCatalog.Create(scheme));
        using var logits = model.call(randn(5, 1, 28, 28));
        Assert.Equal(new long[] { 5, 10 }, logits.shape);
        Assert.True(logits.isfinite().all().item<bool>());
    }

    [Fact]
    public void Downsampling_halves_the_map_and_doubles_the_channels()
    {
        using var model = (CifarResNet)new VisionConfig("resnet", 8, 4, 1, 28, 10).Build(new ResidualScheme());
        var shapes = model.WeightLayers.Select(l => l.Weight.shape[0]).ToList();
        Assert.Equal(new long[] { 4, 4, 4, 8, 8, 16, 16, 10 }, shapes);
    }

    [Fact]
    public void The_residual_scheme_adds_the_branch_to_the_identity()
    {
        using var conn = new ResidualScheme().Build(new ConnectionSite(3, 0, 1, () => nn.Identity()));
        var ctx = new LayerContext(1);
        using var x = randn(2, 3);
        using var y = randn(2, 3);
        var branch = conn.Prepare(x, ctx);
        Assert.True(branch.Input.equal(x).all().item<bool>());
        Assert.True(conn.Combine(y, branch, ctx).allclose(x + y));
    }

    [Theory]
    [InlineData("resnet", 21)]
    [InlineData("plain", 2)]
    [InlineData("mlp", 5)]
    public void Depths_that_do_not_fit_the_family_are_refused(string family, int depth)
    {
        var ex = Assert.Throws<ArgumentException>(() => Cifar(family, depth).Build(new ResidualScheme()));
        Assert.Contains(family == "mlp" ? "2k+2" : "6n+2", ex.Message);
    }
}
