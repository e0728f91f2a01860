using ResidualLab.Families;
using ResidualLab.Config;
using ResidualLab.Data;
using ResidualLab.Tests.Data;
using ResidualLab.Training;
using ResidualLab.Training.Tasks;
using static TorchSharp.torch;

namespace ResidualLab.Tests.Training;

/// <summary>
/// The vision models on the CPU kernels libtorch picks by thread count and by oneDNN on or off: the
/// same seed must give the same finite losses and gradient norms (to rounding) at 1 and at 2 threads.
/// Widths of 4 give the channel counts (4, 8, 16) below an AVX-512 register's 16 floats, where oneDNN
/// pads its blocked layouts.
/// </summary>
[Collection(GlobalTorchStateCollection.Name)]
[Trait(Slow.Category, Slow.Value)]
public class VisionThreadsTests
{
    const int Steps = 3;

    static RunConfig Config(string family, string scheme, string oneDnn, params string[] extra)
    {
        var v = new ConfigValues();
        foreach (var o in new[]
                 {
                     $"model.name={family}", $"model.depth={(family == "mlp" ? 6 : 14)}", "model.width=4", $"connection.name={scheme}",
                     "train.batch_size=32", $"train.max_iters={Steps}", "train.lr=0.1", "train.warmup_iters=0", "train.weight_decay=1e-4",
                     "train.grad_clip=0", "train.eval_interval=100", "train.eval_batches=1", "train.seed=5", $"train.onednn={oneDnn}", "data.val_images=8",
                 }.Concat(extra))
            v.Override(o);
        return RunConfig.From(v);
    }

    static List<(double Loss, double GradNorm)> Train(RunConfig config, ImageSet set, int threads)
    {
        bool oneDnnBefore = OneDnn.Enabled;
        int threadsBefore = get_num_threads();
        try
        {
            set_num_threads(threads);
            OneDnn.Enabled = config.OneDnn;
            using var task = new ImageClassificationTask(config, config.Vision, set, CPU);
            var trainer = new Trainer(task, config);
            return Enumerable.Range(0, Steps).Select(_ => trainer.Step(0.1)).ToList();
        }
        finally
        {
            set_num_threads(threadsBefore);
            OneDnn.Enabled = oneDnnBefore;
        }
    }

    [Theory]
    [InlineData("resnet", "residual", "on")]
    [InlineData("resnet", "residual", "off")]
    [InlineData("plain", "none", "on")]
    [InlineData("plain", "none", "off")]
    [InlineData("resnet", "post-norm", "on")]
    [InlineData("resnet", "post-norm", "off")]
    [InlineData("mlp", "residual", "off")]
    public void Each_vision_model_trains_to_the_same_finite_losses_at_one_and_two_threads(string family, string scheme, string oneDnn)
    {
        var set = ImageSets.FromFolder("toy", IdxTests.WriteSet(trainCount: 64, testCount: 8, size: 16));
        var config = scheme == "none" ? Config(family, scheme, oneDnn, "connection.norm=false") : Config(family, scheme, oneDnn);

        var one = Train(config, set, threads: 1);
        var two = Train(config, set, threads: 2);

        for (int i = 0; i < Steps; i++)
        {
            Assert.True(Finite(one[i]) && Finite(two[i]), $"step {i}: 1 thread loss {one[i].Loss} grad {one[i].GradNorm}, 2 threads loss {two[i].Loss} grad {two[i].GradNorm}");
            Assert.True(Math.Abs(one[i].Loss - two[i].Loss) < 1e-3, $"step {i}: loss {one[i].Loss} at 1 thread, {two[i].Loss} at 2");
            Assert.True(Math.Abs(one[i].GradNorm - two[i].GradNorm) < 1e-3 * (1 + one[i].GradNorm), $"step {i}: gradient norm {one[i].GradNorm} at 1 thread, {two[i].GradNorm} at 2");
        }
    }

    static bool Finite((double Loss, double GradNorm) step) => double.IsFinite(step.Loss) && double.IsFinite(step.GradNorm);

    [Fact]
    public void OneDnn_on_and_off_give_the_same_losses()
    {
        var set = ImageSets.FromFolder("toy", IdxTests.WriteSet(trainCount: 64, testCount: 8, size: 16));

        var on = Train(Config("resnet", "residual", "on"), set, threads: 1);
        var off = Train(Config("resnet", "residual", "off"), set, threads: 1);

        Assert.Equal(on.Select(s => s.Loss), off.Select(s => s.Loss), (a, b) => Math.Abs(a - b) < 1e-3);
    }

    [Theory]
    [InlineData("resnet")]
    [InlineData("gpt")]
    public void OneDnn_auto_follows_the_cpu_and_on_and_off_override_it(string model)
    {
        var v = new ConfigValues();
        v.Override($"model.name={model}");
        bool expected = !ModelFamily.OneDnnSuspect(CpuIdentity.Host); // every family chooses alike
        Assert.Equal(expected, RunConfig.From(v).OneDnn);
        v.Override("train.onednn=on");
        Assert.True(RunConfig.From(v).OneDnn);
        v.Override("train.onednn=off");
        Assert.False(RunConfig.From(v).OneDnn);
        v.Override("train.onednn=maybe");
        Assert.Contains("must be on, off or auto", Assert.Throws<ConfigException>(() => RunConfig.From(v)).Message);
    }

    [Theory]
    [InlineData("AuthenticAMD", 26, true)]
    [InlineData("AuthenticAMD", 25, false)]
    [InlineData("GenuineIntel", 6, false)]
    public void OneDnn_is_suspect_only_on_the_cpu_where_it_failed(string vendor, int family, bool suspect)
    {
        var cpu = CpuIdentity.Parse([$"vendor_id\t: {vendor}", $"cpu family\t: {family}", "model name\t: Test CPU", "flags\t\t: fpu avx2 avx512f", ""]);
        Assert.Equal(family, cpu.Family);
        Assert.True(cpu.Avx512);
        Assert.Equal(suspect, ModelFamily.OneDnnSuspect(cpu));
    }
}
