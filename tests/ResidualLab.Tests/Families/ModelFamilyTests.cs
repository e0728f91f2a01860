using Microsoft.Data.Sqlite;
using ResidualLab.Config;
using ResidualLab.Data;
using ResidualLab.Experiments;
using ResidualLab.Families;
using ResidualLab.Results.Store;
using ResidualLab.Tests.Data;
using ResidualLab.Training;

namespace ResidualLab.Tests.Families;

/// <summary>
/// The model-family registry: each family answers to its own names and declares its own keys, the schema is the
/// shared keys plus theirs (so run ids stay what they were), and a family's run states its facts once in the store.
/// </summary>
public class ModelFamilyTests
{
    [Fact]
    public void Every_model_name_selects_one_family_and_every_family_key_is_in_the_schema()
    {
        var names = ModelFamilies.All.SelectMany(f => f.Names).ToList();
        Assert.Equal(names.Distinct().Count(), names.Count);
        Assert.Equal(["gpt", "resnet", "plain", "mlp", "repvgg"], names);
        foreach (var family in ModelFamilies.All)
        {
            Assert.All(family.Names, n => Assert.Same(family, ModelFamilies.Find(n)));
            Assert.All(family.Keys, k => Assert.Equal(k, ConfigSchema.Find(k.Key)));
            Assert.Contains(family.Keys, k => k.Key == family.DepthKey);
        }
        Assert.Null(ModelFamilies.Find("transformer"));
    }

    [Fact]
    public void A_default_config_keeps_the_canonical_text_and_run_id_it_always_had()
    {
        // Results folders find finished runs by this id: the registry must not change it.
        var config = RunConfig.From(new ConfigValues());
        Assert.Equal(
            "connection.name=\"pre-norm\"\ndata.augment=false\ndata.corpus=\"moby-dick\"\ndata.images=\"fashion-mnist\"\ndata.path=\"\"\n"
            + "data.test_fraction=0.1\ndata.train_images=0\ndata.val_fraction=0.1\ndata.val_images=5000\nmodel.bias=true\nmodel.block_size=128\n"
            + "model.d_model=192\nmodel.depth=20\nmodel.dropout=0\nmodel.n_head=6\nmodel.n_layer=6\nmodel.name=\"gpt\"\nmodel.value_residual=false\n"
            + "model.width=16\ntrain.batch_size=32\ntrain.beta1=0.9\ntrain.beta2=0.99\ntrain.device=\"cpu\"\ntrain.eval_batches=20\n"
            + "train.eval_interval=100\ntrain.grad_clip=1\ntrain.lr=0.001\ntrain.max_iters=1000\ntrain.min_lr=0.0001\ntrain.momentum=0.9\n"
            + "train.seed=1337\ntrain.warmup_iters=100\ntrain.weight_decay=0.1\n",
            config.Canonical);
    }

    [Theory]
    [InlineData("model.name=resnet", "model.depth=21", "'model.depth': a resnet net's depth is 6n+2")]
    [InlineData("model.name=mlp", "train.dtype=bfloat16", "bfloat16 is for the GPT only; 'mlp' trains in float32")]
    [InlineData("model.name=plain", "model.init=pytorch", "'plain' takes model.init = delta-orthogonal (or none: He et al.'s initialisation), got 'pytorch'")]
    [InlineData("model.name=gpt", "model.init=delta", "'model.init' must be one of gpt2, pytorch, ds-init for the gpt")]
    [InlineData("model.name=resnett", "model.depth=20", "unknown model 'resnett' (did you mean 'resnet'?); models: gpt, resnet, plain, mlp, repvgg")]
    public void Each_family_checks_its_own_settings_in_one_line(string model, string setting, string message)
    {
        var v = new ConfigValues();
        v.Override(model);
        v.Override(setting);
        Assert.Contains(message, Assert.Throws<ConfigException>(() => RunConfig.From(v)).Message);
    }

    [Fact]
    public void A_run_states_its_facts_once_in_the_store_and_a_vision_run_its_own_depth()
    {
        string dir = TestSupport.TempDir();
        using var store = ResultsStore.Open(dir);
        string text = Path.Combine(dir, "tiny.txt");
        File.WriteAllText(text, TestSupport.TinyText());
        var gpt = TestSupport.TinyConfig("train.max_iters=2", "model.match_params=none", $"data.path={text}");
        RunExecutor.Execute(gpt, Path.Combine(dir, "runs", gpt.RunId), store);
        var facts = store.Facts(gpt.RunId);
        Assert.True(facts[RunFact.FlopsPerStep] > 0);
        Assert.True(facts[RunFact.MatchedWidth] >= 1 && facts[RunFact.MatchedHeads] >= 1);
        Assert.DoesNotContain(store.Diagnostics(gpt.RunId), d => d.Name == RunFact.FlopsPerStep);

        var set = ImageSets.FromFolder("toy", IdxTests.WriteSet(trainCount: 16, testCount: 4, size: 12));
        var v = new ConfigValues();
        foreach (var o in new[] { "model.name=resnet", "model.depth=8", "model.width=4", "connection.name=residual", "train.batch_size=8",
                     "train.max_iters=2", "train.warmup_iters=0", "train.eval_interval=10", "train.eval_batches=1", "data.val_images=4" })
            v.Override(o);
        var vision = RunConfig.From(v);
        RunExecutor.Execute(vision, Path.Combine(dir, "runs", vision.RunId), store, data: DataCache.With(vision.Vision.Images, set));
        Assert.Equal(8, store.Find(vision.RunId)!.Depth);
        Assert.True(store.Facts(vision.RunId)[RunFact.FlopsPerStep] > 0);
    }

    [Fact]
    public void A_store_from_before_run_facts_moves_them_out_of_the_diagnostics()
    {
        string dir = TestSupport.TempDir();
        var config = TestSupport.TinyConfig();
        using (var store = ResultsStore.Open(dir))
        {
            store.BeginRun(config, new RunEnvironment("0.1.0", "abc", ".NET", "ts", "lt", "cpu", 1, "host", "linux", false));
            store.AddMetrics(config.RunId, [], [], [new Diagnostic(0, RunFact.FlopsPerStep, 0, 1.5e9), new Diagnostic(0, "grad_norm", 0, 0.7)]);
        }
        using (var db = new SqliteConnection($"Data Source={Path.Combine(dir, ResultsStore.FileName)};Pooling=False"))
        {
            db.Open();
            using var cmd = db.CreateCommand();
            cmd.CommandText = "PRAGMA user_version = 3;";
            cmd.ExecuteNonQuery();
        }
        using (var store = ResultsStore.Open(dir))
        {
            Assert.Equal(1.5e9, store.Facts(config.RunId)[RunFact.FlopsPerStep]);
            Assert.Equal(["grad_norm"], store.Diagnostics(config.RunId).Select(d => d.Name));
        }
    }
}
