using ResidualLab.Config;
using ResidualLab.Experiments;
using ResidualLab.Processes;
using ResidualLab.Results.Store;

namespace ResidualLab.Tests.Experiments;

/// <summary>A sweep of tiny GPTs on the tiny corpus, written as a TOML file in a fresh folder.</summary>
static class TinySweep
{
    public static string WriteConfig(string dir, string sweep, int maxIters = 20)
    {
        string corpus = Path.Combine(dir, "tiny.txt");
        File.WriteAllText(corpus, TestSupport.TinyText());
        string path = Path.Combine(dir, "sweep.toml");
        File.WriteAllText(path, $"""
            [model]
            n_layer = 1
            d_model = 32
            n_head = 2
            block_size = 16

            [data]
            path = "{corpus}"

            [train]
            batch_size = 8
            max_iters = {maxIters}
            lr = 3e-3
            min_lr = 3e-4
            warmup_iters = 5
            eval_interval = 10
            eval_batches = 2
            probe_interval = 10
            threads = 1

            [sweep]
            {sweep}
            """);
        return path;
    }

    public static SweepPlan Plan(string configPath) => SweepGrid.Expand(ConfigValues.FromTomlFile(configPath));

    /// <summary>Runs the sweep into resultsDir (N at a time as child processes of the reslab built next to the tests); returns what it did.</summary>
    public static SweepOutcome Run(string configPath, string resultsDir, int parallel = 1)
    {
        using var store = ResultsStore.Open(resultsDir);
        return SweepRunner.Run(Plan(configPath), resultsDir, store, parallel, _ => null, _ => { },
            reslab: ReslabCommand.Dll(Path.Combine(AppContext.BaseDirectory, "reslab.dll")));
    }

    static readonly Lazy<(string Config, string Results)> Shared = new(() =>
    {
        string dir = TestSupport.TempDir();
        string config = WriteConfig(dir, """
            "connection.name" = ["pre-norm", "none"]
            "model.n_layer" = [1, 2]
            "train.seed" = [1, 2]
            """);
        string results = Path.Combine(dir, "results");
        Run(config, results);
        return (config, results);
    });

    /// <summary>A finished 2 schemes x 2 depths x 2 seeds study, trained once per test process (read it, never change it).</summary>
    public static string SharedStudy => Shared.Value.Results;

    /// <summary>A fresh folder holding a copy of <see cref="SharedStudy"/>'s store, for tests that write next to it.</summary>
    public static string CopyOfSharedStudy()
    {
        string folder = TestSupport.TempDir();
        foreach (var file in Directory.GetFiles(SharedStudy, "results.db*"))
            File.Copy(file, Path.Combine(folder, Path.GetFileName(file)));
        return folder;
    }

    /// <summary>The sweep file of <see cref="SharedStudy"/>.</summary>
    public static string SharedStudyConfig => Shared.Value.Config;
}
