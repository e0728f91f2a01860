using ResidualLab.Config;
using ResidualLab.Data;
using ResidualLab.Experiments;
using ResidualLab.Families;
using ResidualLab.Models;
using ResidualLab.Training;
using ResidualLab.Training.Tasks;
using static TorchSharp.torch;

namespace ResidualLab.Bench;

/// <summary>
/// A fixed image-classifier training workload: the CIFAR ResNet of He et al. 2016 at a depth (6n+2) and
/// width, on square images of one size, trained with SGD (momentum 0.9, weight decay 1e-4 on the
/// convolution and linear weights, lr 0.1) as config overrides.
/// </summary>
internal sealed record ResNetWorkload(
    string Name, int Depth, int Width, int ImageSize, int Channels, int Classes, int BatchSize, string Connection = "residual", string OneDnn = "auto")
    : IBenchWorkload
{
    /// <summary>ResNet-20 (channels 16/32/64, x + F(x), option-A shortcuts) on 28x28 single-channel images
    /// (the Fashion-MNIST shape), 10 classes, batch 128.</summary>
    public static ResNetWorkload ResNet20 => new("resnet20", 20, 16, 28, 1, 10, 128);

    public const double LearningRate = 0.1;
    public const double Momentum = 0.9;
    public const double WeightDecay = 1e-4;

    public string Description =>
        $"ResNet-{Depth} ({Connection}), channels {Width}/{2 * Width}/{4 * Width}, {ImageSize}x{ImageSize}x{Channels} images, {Classes} classes, batch {BatchSize}";
    public string Unit => "image";
    public int ItemsPerStep => BatchSize;
    public string FlopsMethod => "3 x 2 x the forward multiply-adds of every convolution and linear layer";
    public string PeerScript => "resnet_bench.py";

    public IReadOnlyList<string> PeerArguments(int steps, int warmup, int threads) =>
    [
        "--depth", $"{Depth}", "--width", $"{Width}", "--image-size", $"{ImageSize}", "--channels", $"{Channels}",
        "--classes", $"{Classes}", "--batch-size", $"{BatchSize}", "--pool", $"{SyntheticImageCount}",
        "--lr", $"{LearningRate}", "--momentum", $"{Momentum}", "--weight-decay", $"{WeightDecay}",
        "--steps", $"{steps}", "--warmup", $"{warmup}", "--threads", $"{threads}",
    ];

    /// <summary>Synthetic training images the batches are drawn from: eight batches' worth.</summary>
    public int SyntheticImageCount => 8 * BatchSize;

    public BenchResult Run(int steps, int warmup, string device, int threads) =>
        ResNetBench.Run(this, steps, warmup, device, threads);

    public RunConfig Config(string device, int threads)
    {
        var v = new ConfigValues();
        foreach (var o in new[]
                 {
                     "model.name=resnet", $"model.depth={Depth}", $"model.width={Width}", $"connection.name={Connection}",
                     "data.augment=false", "data.val_images=0", $"train.batch_size={BatchSize}", $"train.lr={LearningRate}", "train.warmup_iters=0",
                     $"train.momentum={Momentum}", $"train.weight_decay={WeightDecay}", "train.grad_clip=0",
                     $"train.device={device}", $"train.threads={threads}", $"train.onednn={OneDnn}",
                 })
            v.Override(o);
        return RunConfig.From(v);
    }
}

/// <summary>
/// Times the training loop's own step for a classifier (next batch, forward, backward, the per-layer and global
/// gradient norms, SGD, garbage collection) on synthetic images, so no image set is needed. Model
/// FLOPs per image: 2 FLOPs per multiply-add of every convolution and linear layer, forward, times 3
/// for the forward and backward passes.
/// </summary>
internal static class ResNetBench
{
    const ulong ImageSeed = 12345;

    public static BenchResult Run(ResNetWorkload workload, int steps, int warmup, string device, int threads)
    {
        var config = workload.Config(device, threads);
        var (dev, _) = RunExecutor.PrepareRuntime(config);
        var images = SyntheticImages(workload);
        using var task = new ImageClassificationTask(config, config.Settings<VisionSettings>(), images, dev);
        var trainer = new Trainer(task, config);
        double flopsPerImage = 3 * 2.0 * ModelFlops.ForwardMultiplyAdds(task.Model, workload.Channels, workload.ImageSize, workload.ImageSize);
        var times = StepTimer.Time(() => trainer.Step(ResNetWorkload.LearningRate), steps, warmup, dev);
        var result = BenchResult.FromSteps(workload.Name, times, workload.ItemsPerStep, flopsPerImage, task.Model.ParameterCount());
        images.Train.Pixels.Dispose();
        images.Train.Labels.Dispose();
        return result;
    }

    /// <summary>
    /// <see cref="ResNetWorkload.SyntheticImageCount"/> random images, each pixel N(127.5, 64²) rounded and
    /// clamped to a byte (standard normal after the set's normalisation), with uniformly random labels,
    /// from a fixed seed. The bench never evaluates, so the test split is the training split.
    /// </summary>
    public static ImageSet SyntheticImages(ResNetWorkload workload)
    {
        using var scope = NewDisposeScope();
        var generator = new Generator(ImageSeed);
        int n = workload.SyntheticImageCount;
        var pixels = randn([n, workload.Channels, workload.ImageSize, workload.ImageSize], generator: generator)
            .mul_(64).add_(127.5).round_().clamp_(0, 255).to_type(ScalarType.Byte);
        var labels = randint(workload.Classes, [n], generator: generator, dtype: ScalarType.Int64);
        var split = new ImageSplit(pixels.DetachFromDisposeScope(), labels.DetachFromDisposeScope());
        return ImageSet.FromSplits("synthetic", split, split) with { Classes = workload.Classes };
    }
}
