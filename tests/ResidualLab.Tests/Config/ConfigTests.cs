using ResidualLab.Config;

namespace ResidualLab.Tests.Config;

public class ConfigTests
{
    static ConfigValues Toml(string text)
    {
        var v = new ConfigValues();
        v.MergeToml(text, "test.toml");
        return v;
    }

    [Fact]
    public void Snake_case_keys_map_and_defaults_fill_the_rest()
    {
        var cfg = RunConfig.From(Toml("[model]\nn_layer = 3\nd_model = 64\nn_head = 8\n[train]\nlr = 0.002\n"));
        Assert.Equal(3, cfg.Gpt.Shape.NLayer);
        Assert.Equal(64, cfg.Gpt.Shape.DModel);
        Assert.Equal(8, cfg.Gpt.Shape.NHead);
        Assert.Equal(0.002, cfg.Train.Lr);
        Assert.Equal(32, cfg.Train.BatchSize); // default
    }

    [Theory]
    [InlineData("[model]\nn_head = 5\n", "n_head (5) must divide model.d_model")]
    [InlineData("[model]\nn_layer = 0\n", "'model.n_layer' must be in [1,")]
    [InlineData("[train]\nlr = -0.1\n", "'train.lr' must be in (0,")]
    [InlineData("[train]\nlr = \"fast\"\n", "'train.lr' must be a number")]
    [InlineData("[modle]\nn_layer = 2\n", "unknown section [modle] (did you mean 'model'?)")]
    [InlineData("n_layer = 2\n", "must sit in a section")]
    [InlineData("[train]\ndtype = \"float16\"\n", "'train.dtype' must be float32 or bfloat16, got 'float16'")]
    [InlineData("[model]\nname = \"plain\"\n[train]\ndtype = \"bfloat16\"\n", "bfloat16 is for the GPT only; 'plain' trains in float32")]
    public void Bad_values_are_errors_with_location(string toml, string expected)
    {
        var ex = Assert.Throws<ConfigException>(() => RunConfig.From(Toml(toml)));
        Assert.Contains(expected, ex.Message);
        Assert.StartsWith("test.toml:", ex.Message);
    }

    [Fact]
    public void Run_id_is_a_hash_of_the_canonical_config()
    {
        var a = RunConfig.From(Toml("[model]\nn_layer = 2\n"));
        var b = new ConfigValues();
        b.Override("model.n_layer=2");
        b.Override("train.threads=2"); // threads do not change the numbers, so not the run id
        var c = new ConfigValues();
        c.Override("model.n_layer=3");
        Assert.Equal(a.RunId, RunConfig.From(b).RunId);
        Assert.NotEqual(a.RunId, RunConfig.From(c).RunId);
    }

    /// <summary>The canonical config of a run planned before train.dtype existed (a 1-layer post-norm sweep run), and its id then.</summary>
    const string RunPlannedBeforeDtype =
        "connection.name=\"post-norm\"\ndata.augment=false\ndata.corpus=\"moby-dick\"\ndata.images=\"fashion-mnist\"\ndata.path=\"\"\n" +
        "data.train_images=0\ndata.val_fraction=0.1\nmodel.bias=true\nmodel.block_size=64\nmodel.d_model=64\nmodel.depth=20\nmodel.dropout=0\n" +
        "model.n_head=4\nmodel.n_layer=1\nmodel.name=\"gpt\"\nmodel.value_residual=false\nmodel.width=16\ntrain.batch_size=16\ntrain.beta1=0.9\n" +
        "train.beta2=0.99\ntrain.device=\"cpu\"\ntrain.eval_batches=10\ntrain.eval_interval=50\ntrain.grad_clip=1\ntrain.lr=0.002\n" +
        "train.max_iters=250\ntrain.min_lr=0.0002\ntrain.momentum=0.9\ntrain.seed=3\ntrain.warmup_iters=25\ntrain.weight_decay=0.1\n";

    /// <summary>The same run planned with the test split: validation and test are different text, so the numbers (and the id) are new.</summary>
    static readonly string RunPlannedWithTestSplit = RunPlannedBeforeDtype
        .Replace("data.train_images=0\n", "data.test_fraction=0.1\ndata.train_images=0\n")
        .Replace("data.val_fraction=0.1\n", "data.val_fraction=0.1\ndata.val_images=5000\n");

    [Fact]
    public void The_test_split_gives_runs_new_ids_and_keys_added_later_leave_them_unchanged_at_their_defaults()
    {
        Assert.NotEqual("12e497669d0b", RunConfig.From(ConfigValues.FromCanonical(RunPlannedBeforeDtype, "config.txt")).RunId);
        var planned = ConfigValues.FromCanonical(RunPlannedWithTestSplit, "config.txt");
        Assert.Equal(RunPlannedWithTestSplit, planned.Canonical());
        string id = RunConfig.From(planned).RunId;
        foreach (var change in new[] { "train.dtype=bfloat16", "model.init=pytorch", "train.decay=all" })
        {
            var changed = ConfigValues.FromCanonical(RunPlannedWithTestSplit, "config.txt");
            changed.Override(change);
            Assert.Contains(change.Replace("=", "=\"") + "\"\n", changed.Canonical());
            Assert.NotEqual(id, RunConfig.From(changed).RunId);
        }
    }

    [Fact]
    public void Connection_options_that_do_not_apply_are_errors()
    {
        var v = new ConfigValues();
        v.Override("connection.name=pre-norm");
        v.Override("connection.n=4");
        var ex = Assert.Throws<ConfigException>(() => RunConfig.From(v));
        Assert.Contains("--set connection.n: option 'n' does not apply to 'pre-norm'", ex.Message);
    }
}
