namespace ResidualLab.Tests.Cli;

[Trait(Slow.Category, Slow.Value)]
public class CliErrorTests
{
    [Fact]
    public void Unknown_flag_is_one_line_usage_error()
    {
        var line = CliProcess.AssertOneLineError(CliProcess.Run(["train", "--n-layers", "3"]));
        Assert.Contains("--n-layers", line);
    }

    [Fact]
    public void A_value_of_the_wrong_type_is_one_line_error_saying_what_to_give()
    {
        var line = CliProcess.AssertOneLineError(CliProcess.Run(["train", "--threads", "abc"]));
        Assert.Contains("--threads 'abc' is not valid: give a whole number", line);
        Assert.DoesNotContain("System.", line);
    }

    [Fact]
    public void A_corrupt_results_store_is_one_line_error_naming_it()
    {
        string dir = TestSupport.TempDir();
        string db = Path.Combine(dir, "results.db");
        File.WriteAllText(db, "this is not an SQLite database, but long enough to have a header of one......\n");
        var line = CliProcess.AssertOneLineError(CliProcess.Run(["report", dir]));
        Assert.Contains($"{db} is not a readable results store", line);
        Assert.Contains("move it aside", line);
        Assert.DoesNotContain("SqliteException", line);
    }

    [Fact]
    public void An_output_folder_that_is_a_file_is_one_line_error()
    {
        string file = Path.Combine(TestSupport.TempDir(), "results");
        File.WriteAllText(file, "");
        var line = CliProcess.AssertOneLineError(CliProcess.Run(["train", "--out", file]));
        Assert.Contains($"--out '{file}' is a file; give a folder", line);
    }

    [Fact]
    public void Missing_data_file_is_one_line_error()
    {
        var line = CliProcess.AssertOneLineError(CliProcess.Run(["train", "--data", "/no/such/corpus.txt"]));
        Assert.Contains("/no/such/corpus.txt", line);
        Assert.Contains("not found", line);
    }

    [Fact]
    public void Misspelled_config_key_suggests_the_right_one()
    {
        var line = CliProcess.AssertOneLineError(CliProcess.Run(["train", "--preset", "seed-1layer", "--set", "model.n_layr=2"]));
        Assert.Contains("did you mean 'model.n_layer'", line);
    }

    [Fact]
    public void Unknown_connection_is_one_line_error()
    {
        var line = CliProcess.AssertOneLineError(CliProcess.Run(["train", "--set", "connection.name=prenorm"]));
        Assert.Contains("did you mean 'pre-norm'", line);
    }

    [Fact]
    public void Config_file_error_names_file_and_line()
    {
        string path = Path.Combine(TestSupport.TempDir(), "bad.toml");
        File.WriteAllText(path, "[model]\nn_layer = 2\nd_modle = 64\n");
        var line = CliProcess.AssertOneLineError(CliProcess.Run(["train", "--config", path]));
        Assert.Contains($"{path}:3:1", line);
        Assert.Contains("did you mean 'model.d_model'", line);
    }

    [Fact]
    public void Cuda_requested_without_cuda_is_one_line_error()
    {
        var line = CliProcess.AssertOneLineError(CliProcess.Run(["train", "--device", "cuda", "--data", WriteCorpus()]));
        Assert.Contains("cuda", line);
    }

    [Fact]
    public void Offline_and_uncached_corpus_says_how_to_provide_it()
    {
        // An empty cache and an npm that cannot be found: the error must say how to provide the file.
        var env = new Dictionary<string, string> { ["RESLAB_CACHE"] = TestSupport.TempDir(), ["PATH"] = "/nonexistent" };
        var o = CliProcess.Run(["train", "--set", "train.max_iters=1"], env);
        var line = CliProcess.AssertOneLineError(o);
        Assert.Contains("--data", line);
    }

    [Fact]
    public void Train_runs_end_to_end_on_a_given_file()
    {
        string dir = TestSupport.TempDir();
        var o = CliProcess.Run(["train", "--data", WriteCorpus(), "--out", dir,
            "--set", "model.n_layer=1", "--set", "model.d_model=16", "--set", "model.n_head=2", "--set", "model.block_size=16",
            "--set", "train.max_iters=5", "--set", "train.batch_size=4", "--set", "train.eval_batches=2", "--threads", "1"]);
        Assert.True(o.ExitCode == 0, o.StdErr);
        Assert.Contains("done: 5 steps", o.StdOut);
        var runDir = Directory.GetDirectories(Path.Combine(dir, "runs")).Single();
        Assert.True(File.Exists(Path.Combine(runDir, "result.json")));
        Assert.True(File.Exists(Path.Combine(runDir, "model.pt")));
        Assert.Equal(6, File.ReadAllLines(Path.Combine(runDir, "metrics.jsonl")).Length); // 5 steps + final eval
    }

    static string WriteCorpus()
    {
        string path = Path.Combine(TestSupport.TempDir(), "corpus.txt");
        File.WriteAllText(path, TestSupport.TinyText());
        return path;
    }

    [Fact]
    public void Degradation_depth_that_is_not_6n_plus_2_is_one_line_error()
    {
        var line = CliProcess.AssertOneLineError(CliProcess.Run(["demo", "degradation", "--cnn-depths", "20,21", "--mlp-depths", ""]));
        Assert.Contains("6n+2", line);
        Assert.Contains("21", line);
    }

    [Fact]
    public void TAT_asked_of_a_ResNet_with_its_shortcuts_is_one_line_error()
    {
        var line = CliProcess.AssertOneLineError(CliProcess.Run(["train", "--set", "model.name=resnet", "--set", "connection.name=residual",
            "--set", "model.activation=tat"]));
        Assert.Contains("--set model.activation: model.activation = tat applies to nets without shortcuts", line);
    }

    [Fact]
    public void Fusing_a_run_that_is_not_RepVGG_is_one_line_error()
    {
        string run = TestSupport.TempDir();
        var values = new ResidualLab.Config.ConfigValues();
        foreach (var o in new[] { "model.name=plain", "connection.name=none", "connection.norm=false" }) values.Override(o);
        File.WriteAllText(Path.Combine(run, "config.txt"), ResidualLab.Config.RunConfig.From(values).FullText);
        var line = CliProcess.AssertOneLineError(CliProcess.Run(["export", run, "--fuse"]));
        Assert.Contains("is a plain model: --fuse re-parameterises RepVGG runs (model.name = repvgg)", line);
    }

    [Fact]
    public void A_corrupt_cached_image_set_is_one_line_error_saying_how_to_fix_it()
    {
        string cache = TestSupport.TempDir();
        string folder = Path.Combine(cache, "images", "fashion-mnist");
        Directory.CreateDirectory(folder);
        foreach (var f in new[] { "train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte" })
            File.WriteAllText(Path.Combine(folder, f), "damaged");
        var line = CliProcess.AssertOneLineError(CliProcess.Run(["train", "--set", "model.name=resnet", "--out", cache],
            new Dictionary<string, string> { ["RESLAB_CACHE"] = cache }));
        Assert.Contains("corrupt", line);
        Assert.Contains("delete", line);
    }
}
