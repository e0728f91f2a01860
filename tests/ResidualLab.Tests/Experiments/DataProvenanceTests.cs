using System.Security.Cryptography;
using System.Text.Json;
using Microsoft.Data.Sqlite;
using ResidualLab.Data;
using ResidualLab.Results.Store;
using ResidualLab.Tests.Cli;
using ResidualLab.Tests.Data;

namespace ResidualLab.Tests.Experiments;

/// <summary>Each run records the sha256 of the data it trained on; runs on different bytes under one data name are not mixed.</summary>
[Trait(Slow.Category, Slow.Value)]
public class DataProvenanceTests
{
    static string Sha256(params string[] files) =>
        Convert.ToHexStringLower(SHA256.HashData(files.SelectMany(File.ReadAllBytes).ToArray()));

    [Fact]
    public void A_changed_data_file_under_an_unchanged_path_is_refused_naming_both_hashes_and_runs()
    {
        string dir = TestSupport.TempDir();
        string config = TinySweep.WriteConfig(dir, "\"train.seed\" = [1]", maxIters: 4);
        string corpus = Path.Combine(dir, "tiny.txt");
        string results = Path.Combine(dir, "out");
        var first = CliProcess.Run(["sweep", config, "--out", results]);
        Assert.True(first.ExitCode == 0, first.StdErr + first.StdOut);
        string before = Sha256(corpus);
        string folder = Path.Combine(results, "sweep");
        string firstRun;
        using (var store = ResultsStore.Open(folder)) firstRun = store.Runs().Single().RunId;
        using (var json = JsonDocument.Parse(File.ReadAllText(Path.Combine(folder, "runs", firstRun, "result.json"))))
            Assert.Equal((corpus, before), (json.RootElement.GetProperty("data").GetString(), json.RootElement.GetProperty("data_sha256").GetString()));

        File.AppendAllText(corpus, "one more line, and the text is another text.\n");
        File.WriteAllText(config, File.ReadAllText(config).Replace("\"train.seed\" = [1]", "\"train.seed\" = [1, 2]"));
        var line = CliProcess.AssertOneLineError(CliProcess.Run(["sweep", config, "--out", results, "--parallel", "1"]));

        Assert.Contains($"data '{corpus}' changed under the same name", line);
        Assert.Contains($"run {firstRun} trained on sha256 {before}", line);
        Assert.Contains($"on sha256 {Sha256(corpus)}", line);
        using (var store = ResultsStore.Open(folder))
        {
            var second = store.Runs().Single(r => r.RunId != firstRun);
            Assert.Contains($"run {second.RunId} would train on sha256", line);
            Assert.Equal(RunState.Failed, second.Status);
            Assert.Null(store.DataConflict()); // the refused run recorded no data
        }
    }

    [Fact]
    public void Report_refuses_a_store_whose_runs_trained_on_different_bytes_under_one_name()
    {
        string folder = TinySweep.CopyOfSharedStudy();
        string changed = new('0', 64);
        string victim;
        using (var store = ResultsStore.Open(folder))
        {
            Assert.Null(store.DataConflict());
            victim = store.Runs()[0].RunId;
        }
        using (var db = new SqliteConnection($"Data Source={Path.Combine(folder, ResultsStore.FileName)};Pooling=False"))
        {
            db.Open();
            using var cmd = db.CreateCommand();
            cmd.CommandText = "UPDATE runs SET data_sha256 = $sha WHERE run_id = $id";
            cmd.Parameters.AddWithValue("$sha", changed);
            cmd.Parameters.AddWithValue("$id", victim);
            Assert.Equal(1, cmd.ExecuteNonQuery());
        }
        var line = CliProcess.AssertOneLineError(CliProcess.Run(["report", folder]));
        Assert.Contains("changed under the same name", line);
        Assert.Contains($"run {victim} trained on sha256 {changed}", line);
    }

    [Fact]
    public void An_image_folders_sha256_is_that_of_its_four_files_in_order()
    {
        string dir = IdxTests.WriteSet(trainCount: 10, testCount: 10, size: 6);
        string[] files = ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"];
        Assert.Equal(Sha256(files.Select(f => Path.Combine(dir, f)).ToArray()), ImageSets.Load(dir).Sha256);
    }
}
