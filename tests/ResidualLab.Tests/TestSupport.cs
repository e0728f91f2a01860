using System.Runtime.CompilerServices;
using ResidualLab.Config;
using ResidualLab.Data;
using ResidualLab.Families;
using ResidualLab.Training;
using ResidualLab.Training.Tasks;

namespace ResidualLab.Tests;

static class TestSupport
{
    [ModuleInitializer]
    internal static void LoadTorch()
    {
        LabRuntime.EnsureLoaded();
        TorchSharp.torch.set_num_threads(1); // tests run in parallel; keep each one on one core
        // Tests that build vision models without a run's runtime preparation train with libtorch's default, oneDNN on:
        // give them the lab's choice for this CPU instead (off where oneDNN convolutions are unsound).
        OneDnn.Enabled = OneDnnChoice.For(OneDnnSetting.Auto, threads: 1).Enabled;
    }

    /// <summary>A small deterministic English-like text, long enough for tiny models.</summary>
    public static string TinyText(int repeats = 40)
    {
        const string verse = "the quick brown fox jumps over the lazy dog. a stitch in time saves nine.\n" +
                             "all that glitters is not gold; to be or not to be, that is the question.\n";
        return string.Concat(Enumerable.Repeat(verse, repeats));
    }

    /// <summary>The tiny text split as a run config splits it by default: 80% train, 10% validation, 10% test.</summary>
    public static TokenCorpus TinyCorpus(int blockSize = 16) => CharCorpus.FromText(TinyText(), 0.1, blockSize, "tiny", testFraction: 0.1);

    /// <summary>A config for a tiny GPT; overrides as "section.key=value".</summary>
    public static RunConfig TinyConfig(params string[] overrides)
    {
        var v = new ConfigValues();
        foreach (var o in new[]
                 {
                     "model.n_layer=1", "model.d_model=32", "model.n_head=2", "model.block_size=16",
                     "train.batch_size=8", "train.max_iters=60", "train.lr=3e-3", "train.min_lr=3e-4",
                     "train.warmup_iters=5", "train.eval_interval=1000", "train.eval_batches=4", "train.seed=7",
                 }.Concat(overrides))
            v.Override(o);
        return RunConfig.From(v);
    }

    /// <summary>The repository's root folder (the one holding ResidualLab.slnx).</summary>
    public static string RepoRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "ResidualLab.slnx"))) dir = dir.Parent;
        return dir?.FullName ?? throw new InvalidOperationException($"no ResidualLab.slnx above {AppContext.BaseDirectory}");
    }

    /// <summary>Trains <paramref name="config"/> end to end into <paramref name="runDir"/>, with a results store of its own
    /// (the one sink) in a fresh folder.</summary>
    public static TrainResult Execute(RunConfig config, string runDir)
    {
        using var store = ResidualLab.Results.Store.ResultsStore.Open(TempDir());
        return ResidualLab.Experiments.RunExecutor.Execute(config, runDir, store);
    }

    /// <summary>A GPT task on <paramref name="corpus"/> and the training loop that runs it.</summary>
    public static (LanguageModelTask Task, Trainer Trainer) GptTrainer(RunConfig config, TokenCorpus corpus)
    {
        var task = new LanguageModelTask(config, config.Gpt, corpus, TorchSharp.torch.CPU);
        return (task, new Trainer(task, config));
    }

    /// <summary>A one-line failure naming the apt-get command when a Debian package this test needs is missing
    /// (scripts/test-packages.sh, which the test command runs first, installs them).</summary>
    public static void RequirePackages(params string[] packages) => DebianPackages.Require("this test", packages);

    /// <summary>This test process's folder of temporary files, removed when the process ends (kept with RESLAB_KEEP_TEST_FILES=1,
    /// to look at what a failing test left).</summary>
    static readonly Lazy<string> TempRoot = new(() =>
    {
        string root = Path.Combine(Path.GetTempPath(), "reslab-tests", $"run-{Environment.ProcessId}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(root);
        if (Environment.GetEnvironmentVariable("RESLAB_KEEP_TEST_FILES") != "1")
            AppDomain.CurrentDomain.ProcessExit += (_, _) =>
            {
                try { Directory.Delete(root, recursive: true); }
                catch (IOException) { }                   // a file still held open (a child process): the rest is gone
                catch (UnauthorizedAccessException) { }
            };
        return root;
    });

    /// <summary>A new empty folder under this test process's temporary folder.</summary>
    public static string TempDir()
    {
        string dir = Path.Combine(TempRoot.Value, Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        return dir;
    }
}

/// <summary>The family settings of a test's run config, typed (the tests know which family they built).</summary>
static class RunConfigTestExtensions
{
    extension(RunConfig config)
    {
        public GptSettings Gpt => config.Settings<GptSettings>();
        public VisionSettings Vision => config.Settings<VisionSettings>();
    }
}
