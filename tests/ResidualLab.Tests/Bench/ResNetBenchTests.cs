using ResidualLab.Bench;
using ResidualLab.Connections;
using ResidualLab.Models;
using ResidualLab.Tests.Cli;
using static TorchSharp.torch;

namespace ResidualLab.Tests.Bench;

/// <summary>The resnet20 bench workload: its FLOP count, its synthetic images, a short run, its PyTorch twin and its CLI.</summary>
[Trait(Slow.Category, Slow.Value)]
public class ResNetBenchTests
{
    /// <summary>Multiply-adds of a 3x3 convolution producing size x size x c_out from c_in channels.</summary>
    static long Conv3x3(int size, int cIn, int cOut) => (long)size * size * cOut * cIn * 3 * 3;

    /// <summary>
    /// ResNet-20 by its layer shapes (He et al. 2016, sec. 4.2): the first convolution, then three stages
    /// of six 3x3 convolutions with w, 2w, 4w filters on maps of s, s/2, s/4 (the first of stages 2 and 3
    /// reads the previous stage's channels), and the 4w x 10 classifier.
    /// </summary>
    static long ResNet20MultiplyAdds(int size, int channels, int w = 16) =>
        Conv3x3(size, channels, w)
        + 6 * Conv3x3(size, w, w)
        + Conv3x3(size / 2, w, 2 * w) + 5 * Conv3x3(size / 2, 2 * w, 2 * w)
        + Conv3x3(size / 4, 2 * w, 4 * w) + 5 * Conv3x3(size / 4, 4 * w, 4 * w)
        + 4 * w * 10;

    [Fact]
    public void ResNet20_forward_multiply_adds_match_the_layer_shapes()
    {
        Assert.Equal(40_551_040, ResNet20MultiplyAdds(32, 3)); // CIFAR's 32x32x3 images: about 41M
        Assert.Equal(30_821_248, ResNet20MultiplyAdds(28, 1)); // the bench's 28x28 grey images: about (28/32)^2 of it

        using var cifar = new VisionConfig("resnet", 20, 16, 3, 32, 10).Build(new ResidualScheme());
        using var grey = new VisionConfig("resnet", 20, 16, 1, 28, 10).Build(new ResidualScheme());
        Assert.Equal(ResNet20MultiplyAdds(32, 3), ModelFlops.ForwardMultiplyAdds(cifar, 3, 32, 32));
        Assert.Equal(ResNet20MultiplyAdds(28, 1), ModelFlops.ForwardMultiplyAdds(grey, 1, 28, 28));
    }

    [Fact]
    public void Counting_leaves_the_model_in_training_mode_with_its_statistics()
    {
        using var model = new VisionConfig("resnet", 8, 4, 1, 12, 10).Build(new ResidualScheme());
        var before = model.buffers().Select(b => b.clone()).ToList();

        ModelFlops.ForwardMultiplyAdds(model, 1, 12, 12);

        Assert.True(model.training);
        Assert.All(model.buffers().Zip(before), p => Assert.True(p.First.equal(p.Second).all().item<bool>()));
    }

    [Fact]
    public void Synthetic_images_are_standard_normal_after_normalising_and_the_same_every_time()
    {
        var workload = ResNetWorkload.ResNet20;
        var a = ResNetBench.SyntheticImages(workload);
        var b = ResNetBench.SyntheticImages(workload);

        Assert.Equal(new long[] { 8 * 128, 1, 28, 28 }, a.Train.Pixels.shape);
        Assert.Equal(10, a.Classes);
        Assert.True(a.Train.Pixels.equal(b.Train.Pixels).all().item<bool>());
        Assert.True(a.Train.Labels.equal(b.Train.Labels).all().item<bool>());
        using var x = a.Normalise(a.Train.Pixels);
        Assert.InRange(x.mean().item<float>(), -1e-3, 1e-3); // standardised with the set's own mean and std
        Assert.InRange(x.std().item<float>(), 0.999, 1.001);
        double withinOneStd = x.abs().lt(1).to_type(ScalarType.Float64).mean().item<double>();
        Assert.InRange(withinOneStd, 0.66, 0.70);              // normal: 68%, not uniform's 58%
        Assert.Equal(10, a.Train.Labels.unique().Item1.numel());
    }

    [Fact]
    public void A_short_run_on_a_tiny_width_gives_finite_positive_numbers()
    {
        var tiny = ResNetWorkload.ResNet20 with { Width = 2, BatchSize = 16 };
        const double peak = 1e11;

        var r = ResNetBench.Run(tiny, steps: 3, warmup: 1, "cpu", get_num_threads());

        Assert.Equal(3 * 2.0 * ResNet20MultiplyAdds(28, 1, w: 2), r.FlopsPerItem);
        foreach (double x in new[] { r.MedianStepMs, r.ItemsPerSecond, r.Utilisation(peak) })
            Assert.True(double.IsFinite(x) && x > 0, $"{x}");
        Assert.Equal(16 / (r.MedianStepMs / 1000), r.ItemsPerSecond, 9);
        Assert.Equal(r.FlopsPerItem * r.ItemsPerSecond / peak, r.Utilisation(peak), 9);
        Assert.True(r.Parameters > 0 && r.PeakRssBytes > 0 && r.RssAfterWarmupBytes > 0 && r.FinalRssBytes > 0);
    }

    [Fact]
    public void The_pytorch_twin_accepts_the_workload_and_reports_its_step()
    {
        PyTorchPeer.RequireInstalled();
        var tiny = ResNetWorkload.ResNet20 with { Width = 2, BatchSize = 16 };

        var r = PyTorchPeer.Bench(tiny.PeerScript, tiny.PeerArguments(steps: 3, warmup: 1, threads: 1), new PeerLayout(1, 1), TimeSpan.FromMinutes(5));

        Assert.StartsWith("1.", r.TorchVersion);
        Assert.True(double.IsFinite(r.MedianStepMs) && r.MedianStepMs > 0, $"{r.MedianStepMs}");
        Assert.True(r.PeakRssBytes > 0 && r.RssAfterWarmupBytes > 0 && r.FinalRssBytes > 0);
    }

    [Fact]
    public void The_cli_compares_with_pytorch_in_one_table()
    {
        PyTorchPeer.RequireInstalled();
        var o = CliProcess.Run(["bench", "resnet20", "--compare-pytorch", "--steps", "3", "--warmup", "1", "--rounds", "1", "--threads", "1"], timeoutSeconds: 300);

        Assert.True(o.ExitCode == 0, o.StdErr);
        Assert.Contains("images/s", o.StdOut);
        Assert.Contains("ratio", o.StdOut);
        Assert.Contains("PyTorch times in its fastest layout, torch 1 x OpenBLAS 1 threads", o.StdOut);
        Assert.Contains("model FLOPs per image 184.9 M", o.StdOut); // 6 x 30,821,248
        Assert.Contains("269,434 parameters", o.StdOut);
    }

    [Theory]
    [InlineData(new[] { "bench", "resnet21" }, "resnet21")]
    [InlineData(new[] { "bench", "resnet20", "--steps", "1" }, "--steps must be >= 3")]
    [InlineData(new[] { "bench", "resnet20", "--rounds", "0" }, "--rounds >= 1")]
    [InlineData(new[] { "bench", "resnet20", "--compare-pytorch", "--device", "cuda" }, "use --device cpu")]
    [InlineData(new[] { "bench", "resnet20", "--dtype", "bfloat16" }, "--dtype bfloat16 is for the GPT workloads")]
    [InlineData(new[] { "bench", "--compare-pytorch", "--dtype", "bfloat16" }, "drop --dtype bfloat16")]
    [InlineData(new[] { "bench", "--dtype", "float16" }, "float16")]
    [InlineData(new[] { "bench", "--onednn", "off" }, "--onednn is for the resnet20 workload")]
    [InlineData(new[] { "bench", "resnet20", "--onednn", "maybe" }, "maybe")]
    public void Bad_bench_arguments_are_one_line_errors(string[] args, string expected) =>
        Assert.Contains(expected, CliProcess.AssertOneLineError(CliProcess.Run(args)));
}
