using ResidualLab.Connections;
using ResidualLab.Layers;
using ResidualLab.Models;
using TorchSharp;
using TorchSharp.Modules;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace ResidualLab.Tests.Models;

/// <summary>
/// RepVGG's structural re-parameterisation: the fused plain net computes what the branched net computes in evaluation
/// mode. Tolerances (the specification's section 3.6, from a numpy model of these nets): float64 is exact up to rounding
/// (1e-9 relative to the logits; measured there 1e-13); float32 at depth 20 holds 1e-5 (logits of order 1; measured there
/// up to 4.8e-6), at depth 56 the error is amplified by the deeper Jacobian (measured there 6e-5 to 2.4e-4), so 1e-3; one
/// block alone, with nothing to amplify it, 1e-5.
/// </summary>
public class RepVggTests(ITestOutputHelper output)
{
    static RepVgg Build(int depth, int width, ScalarType dtype = ScalarType.Float32, int seed = 1)
    {
        manual_seed(seed);
        var model = (RepVgg)new VisionConfig("repvgg", depth, width, InChannels: 1, ImageSize: 28, Classes: 10).Build(new NoResidualScheme(Norm: false));
        model.to(dtype);
        return model;
    }

    /// <summary>
    /// Like a trained net: batch-norm scales U(0.5, 1.5) and shifts N(0, 0.1^2), then the running statistics set to those
    /// of one batch (momentum 1), so the logits are of order 1 in evaluation mode; then evaluation mode.
    /// </summary>
    static void Calibrate(RepVgg model, Tensor images)
    {
        using (no_grad())
            foreach (var bn in model.modules().OfType<BatchNormLastDim>())
            {
                bn.Weight.uniform_(0.5, 1.5);
                bn.Bias.normal_(0, 0.1);
                bn.Momentum = 1.0;
            }
        model.train();
        using (no_grad()) model.call(images).Dispose();
        model.eval();
    }

    static (double Abs, double MaxLogit) Difference(RepVgg branched, CifarResNet fused, Tensor images)
    {
        using var _ = no_grad();
        using var a = branched.call(images);
        using var b = fused.call(images);
        return ((a - b).abs().max().to(ScalarType.Float64).item<double>(), a.abs().max().to(ScalarType.Float64).item<double>());
    }

    [Theory]
    [InlineData(20, 4)]
    [InlineData(20, 16)]
    [InlineData(56, 4)]
    [InlineData(56, 16)]
    public void The_fused_net_gives_the_branched_nets_logits_in_float64(int depth, int width)
    {
        using var model = Build(depth, width, ScalarType.Float64);
        using var images = randn([8, 1, 28, 28], dtype: ScalarType.Float64);
        Calibrate(model, images);
        using var fused = model.Fuse();
        using var test = randn([8, 1, 28, 28], dtype: ScalarType.Float64);

        var (abs, max) = Difference(model, fused, test);
        output.WriteLine($"float64 RepVGG-{depth} width {width}: max |branched - fused| {abs:G3}, max |logit| {max:G3}");
        Assert.True(abs <= 1e-9 * Math.Max(1, max), $"{abs} at max logit {max}");
    }

    [Theory]
    [InlineData(20, 1e-5)]
    [InlineData(56, 1e-3)]
    public void The_fused_net_gives_the_branched_nets_logits_in_float32(int depth, double tolerance)
    {
        using var model = Build(depth, 4);
        using var images = randn([8, 1, 28, 28]);
        Calibrate(model, images);
        using var fused = model.Fuse();
        using var test = randn([8, 1, 28, 28]);

        var (abs, max) = Difference(model, fused, test);
        output.WriteLine($"float32 RepVGG-{depth} width 4: max |branched - fused| {abs:G3}, max |logit| {max:G3}");
        Assert.True(abs <= tolerance + tolerance * max, $"{abs} at max logit {max}");
    }

    [Theory]
    [InlineData(8, 8, 1)] // with the identity branch
    [InlineData(8, 16, 2)] // stride 2, no identity
    public void One_block_fuses_to_one_convolution_in_float32(int cIn, int cOut, int stride)
    {
        manual_seed(2);
        using var block = new RepVggBlock(cIn, cOut, stride);
        using var x = randn([4, 14, 14, cIn]);                                 // channel-last, as the blocks take it
        using (no_grad())
            foreach (var bn in block.modules().OfType<BatchNormLastDim>())
            {
                bn.Weight.uniform_(0.5, 1.5);
                bn.Bias.normal_(0, 0.1);
                bn.RunningMean.normal_(0, 0.5);
                bn.RunningVar.uniform_(0.5, 2);
            }
        block.eval();
        var (kernel, bias) = block.EquivalentKernelBias();
        using var _ = no_grad();
        using var fused = nn.functional.relu(nn.functional.conv2d(x.permute(0, 3, 1, 2), kernel, bias, strides: [stride, stride], padding: [1, 1]));
        using var branched = block.call(x).permute(0, 3, 1, 2);
        double error = (fused - branched).abs().max().item<float>();
        output.WriteLine($"one block {cIn}->{cOut} stride {stride}: max difference {error:G3}");
        Assert.True(error < 1e-5, $"{error}");
        Assert.Equal(cIn == cOut && stride == 1, block.HasIdentity);
        kernel.Dispose();
        bias.Dispose();
    }

    [Theory]
    [InlineData(20)]
    [InlineData(56)]
    public void The_fused_net_is_a_plain_stack_of_3x3_convolutions_with_no_branch_left(int depth)
    {
        using var model = Build(depth, 4);
        model.eval();
        using var fused = model.Fuse();

        Assert.Empty(fused.modules().OfType<BatchNormLastDim>());
        Assert.Empty(fused.modules().OfType<RepVggBlock>());
        var convolutions = fused.modules().OfType<Conv2d>().ToList();
        Assert.Equal(depth - 1, convolutions.Count);
        Assert.All(convolutions, c => Assert.Equal(new long[] { 3, 3 }, c.weight!.shape[2..]));
        Assert.All(convolutions, c => Assert.NotNull(c.bias));
        Assert.Equal("plain", fused.Config.Family);
        Assert.Equal(new NoResidualScheme(Norm: false), fused.Connection);
        Assert.False(fused.training);
    }

    [Theory] // the specification's counts (scripts/param_counts.py): one RepVGG block per 3x3 convolution of plain-(6n+2)
    [InlineData(20, 19_746, 17_082)]
    [InlineData(56, 62_082, 53_706)]
    public void Parameters_match_the_RepVGG_twin_of_the_plain_net(int depth, long training, long fused)
    {
        using var model = Build(depth, 4);
        using var deployed = model.Fuse();
        Assert.Equal(training, model.ParameterCount());
        Assert.Equal(fused, deployed.ParameterCount());
        Assert.Equal(depth, model.WeightLayers.Count);
        Assert.Equal(depth == 20 ? 16 : 52, model.Blocks.Count(b => b.HasIdentity));
    }
}
