using ResidualLab.Config;
using ResidualLab.Data;
using ResidualLab.Experiments;
using ResidualLab.Families;
using ResidualLab.Results.Store;
using ResidualLab.Tests.Data;
using ResidualLab.Training;
using ResidualLab.Training.Tasks;
using static TorchSharp.torch;

namespace ResidualLab.Tests.Training;

/// <summary>
/// The vision models on the CPU kernels libtorch picks by thread count and by oneDNN on or off, set up as a
/// run sets them (<see cref="RunExecutor.PrepareRuntime"/>): the same seed must give the same finite losses
/// and gradient norms (to rounding) at 1 and at 2 threads. Widths of 4 give the channel counts (4, 8, 16)
/// below an AVX-512 register's 16 floats, where oneDNN pads its blocked layouts. Where <see cref="OneDnnProbe"/>
/// finds oneDNN's convolutions sound on this CPU, training with oneDNN forced on must agree too; where it finds
/// them unsound, forced-on training is not run (it may give anything, a corrupted heap included) and auto must
/// run as off.
/// </summary>
[Collection(GlobalTorchStateCollection.Name)]
[Trait(Slow.Category, Slow.Value)]
public class VisionThreadsTests
{
    const int Steps = 3;

    static RunConfig Config(string family, string scheme, string oneDnn)
    {
        var v = new ConfigValues();
        foreach (var o in new[]
                 {
                     $"model.name={family}", $"model.depth={(family == "mlp" ? 6 : 14)}", "model.width=4", $"connection.name={scheme}",
                     "train.batch_size=32", $"train.max_iters={Steps}", "train.lr=0.1", "train.warmup_iters=0", "train.weight_decay=1e-4",
                     "train.grad_clip=0", "train.eval_interval=100", "train.eval_batches=1", "train.seed=5", $"train.onednn={oneDnn}", "data.val_images=8",
                 }.Concat(scheme == "none" ? ["connection.norm=false"] : []))
            v.Override(o);
        return RunConfig.From(v);
    }

    static ImageSet Images() => ImageSets.FromFolder("toy", IdxTests.WriteSet(trainCount: 64, testCount: 8, size: 16));

    static List<(double Loss, double GradNorm)> Train(RunConfig config, ImageSet set, int threads)
    {
        bool oneDnnBefore = OneDnn.Enabled;
        int threadsBefore = get_num_threads();
        try
        {
            var (device, _) = RunExecutor.PrepareRuntime(config with { Threads = threads });
            using var task = new ImageClassificationTask(config, config.Vision, set, device);
            var trainer = new Trainer(task, config);
            return Enumerable.Range(0, Steps).Select(_ => trainer.Step(0.1)).ToList();
        }
        finally
        {
            set_num_threads(threadsBefore);
            OneDnn.Enabled = oneDnnBefore;
        }
    }

    /// <summary>Null when both runs are finite and agree step by step (losses to 1e-3, gradient norms to 1e-3 relative); else the first difference.</summary>
    static string? Disagreement(string what, List<(double Loss, double GradNorm)> a, List<(double Loss, double GradNorm)> b)
    {
        for (int i = 0; i < Steps; i++)
        {
            var (x, y) = (a[i], b[i]);
            string values = $"step {i}: loss {x.Loss} and {y.Loss}, gradient norm {x.GradNorm} and {y.GradNorm} ({what})";
            if (!(double.IsFinite(x.Loss) && double.IsFinite(y.Loss) && double.IsFinite(x.GradNorm) && double.IsFinite(y.GradNorm)))
                return $"not finite at {values}";
            if (Math.Abs(x.Loss - y.Loss) >= 1e-3 || Math.Abs(x.GradNorm - y.GradNorm) >= 1e-3 * (1 + x.GradNorm))
                return $"different at {values}";
        }
        return null;
    }

    [Theory]
    [InlineData("resnet", "residual", "auto")]
    [InlineData("resnet", "residual", "off")]
    [InlineData("plain", "none", "auto")]
    [InlineData("plain", "none", "off")]
    [InlineData("resnet", "post-norm", "auto")]
    [InlineData("resnet", "post-norm", "off")]
    [InlineData("mlp", "residual", "auto")]
    public void Each_vision_model_trains_to_the_same_finite_losses_at_one_and_two_threads(string family, string scheme, string oneDnn)
    {
        var set = Images();
        var config = Config(family, scheme, oneDnn);
        Assert.Null(Disagreement("1 and 2 threads", Train(config, set, threads: 1), Train(config, set, threads: 2)));
    }

    [Theory]
    [InlineData("resnet", "residual")]
    [InlineData("plain", "none")]
    [InlineData("resnet", "post-norm")]
    public void OneDnn_forced_on_agrees_where_the_probe_finds_it_sound_and_auto_runs_as_off_where_not(string family, string scheme)
    {
        var set = Images();
        var verdict = OneDnnProbe.At(2);
        var own = Train(Config(family, scheme, "off"), set, threads: 2);
        if (verdict.Sound)
        {
            var one = Train(Config(family, scheme, "on"), set, threads: 1);
            var two = Train(Config(family, scheme, "on"), set, threads: 2);
            string? shown = Disagreement("oneDNN at 1 and 2 threads", one, two) ?? Disagreement("oneDNN and libtorch's own kernels at 2 threads", two, own);
            Assert.True(shown is null, $"the probe says oneDNN's convolutions are {verdict.Describe()}, but training with oneDNN on is {shown}");
        }
        else
        {
            Assert.Matches(@"channels?.*, \d threads?: the .* (is not finite|differs from libtorch's own kernels')", verdict.Finding);
            Assert.Null(Disagreement("auto and off at 2 threads", Train(Config(family, scheme, "auto"), set, threads: 2), own));
        }
    }

    [Fact]
    public void Auto_follows_the_probe_and_on_and_off_override_it()
    {
        var verdict = OneDnnProbe.At(2);
        var choice = OneDnnChoice.For(OneDnnSetting.Auto, threads: 2);
        Assert.Equal(verdict.Sound, choice.Enabled);
        Assert.Contains(verdict.Describe(), choice.Describe());
        Assert.True(OneDnnChoice.For(OneDnnSetting.On, threads: 2).Enabled);
        Assert.False(OneDnnChoice.For(OneDnnSetting.Off, threads: 2).Enabled);
    }

    [Fact]
    public void The_probe_leaves_onednn_the_threads_and_the_global_generator_as_they_were()
    {
        bool oneDnnBefore = OneDnn.Enabled;
        int threadsBefore = get_num_threads();
        try
        {
            OneDnn.Enabled = false;
            set_num_threads(1);
            manual_seed(3);
            var expected = randn(4);
            manual_seed(3);
            var verdict = OneDnnProbe.Run(threads: 2);
            Assert.Equal(expected.data<float>().ToArray(), randn(4).data<float>().ToArray());
            Assert.False(OneDnn.Enabled);
            Assert.Equal(1, get_num_threads());
            Assert.Equal(2, verdict.Threads);
        }
        finally
        {
            OneDnn.Enabled = oneDnnBefore;
            set_num_threads(threadsBefore);
        }
    }

    [Fact]
    public void A_run_records_its_onednn_choice_with_its_environment()
    {
        var config = Config("plain", "none", "auto") with { Threads = 1 };
        string dir = TestSupport.TempDir();
        using var store = ResultsStore.Open(dir);
        bool oneDnnBefore = OneDnn.Enabled;
        int threadsBefore = get_num_threads();
        try
        {
            RunExecutor.Execute(config, Path.Combine(dir, "runs", config.RunId), data: DataCache.With(config.Vision.Images, Images()), store: store);
        }
        finally
        {
            set_num_threads(threadsBefore);
            OneDnn.Enabled = oneDnnBefore;
        }
        Assert.Equal(OneDnnChoice.For(OneDnnSetting.Auto, threads: 1).Describe(), store.EnvironmentOf(config.RunId)!.OneDnn);
    }

    [Theory]
    [InlineData("auto", "Auto")]
    [InlineData("on", "On")]
    [InlineData("off", "Off")]
    public void The_onednn_setting_is_read_from_the_config(string value, string expected) =>
        Assert.Equal(Enum.Parse<OneDnnSetting>(expected), Config("resnet", "residual", value).OneDnn);

    [Fact]
    public void An_unknown_onednn_setting_is_one_clear_line() =>
        Assert.Contains("'train.onednn' must be on, off or auto, got 'maybe'",
            Assert.Throws<ConfigException>(() => Config("resnet", "residual", "maybe")).Message);
}
