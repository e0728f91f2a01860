using Microsoft.Data.Sqlite;
using ResidualLab.Reports;
using ResidualLab.Results.Store;
using ResidualLab.Training;

namespace ResidualLab.Tests.Results;

/// <summary>Throughput is stored as items per second with its unit: tokens for the GPT, images for the vision models.</summary>
public class ThroughputUnitTests
{
    static readonly RunEnvironment Env = new("0.1.0", "abc123", ".NET 10", "0.107.0", "2.10.0", "cpu", 1, "host", "linux");

    static void Record(ResultsStore store, string runId, double itemsPerSecond, string unit)
    {
        var observer = new StoreObserver(store, runId);
        observer.OnStep(new StepMetrics(0, 2.0, 0.1, 1.0, 100, itemsPerSecond, unit));
        observer.OnEnd(new TrainResult(RunStatus.Done, 1, new EvalMetrics(1, 2.0, 2.1, 2.2), 1000, 0.1, 100, 1 << 20));
    }

    [Fact]
    public void A_vision_run_records_images_per_second_and_the_runs_table_says_so()
    {
        string dir = TestSupport.TempDir();
        var gpt = TestSupport.TinyConfig();
        var mlp = TestSupport.TinyConfig("model.name=mlp", "model.depth=4");
        using var store = ResultsStore.Open(dir);
        store.BeginRun(gpt, Env);
        Record(store, gpt.RunId, 5000, "tokens");
        store.BeginRun(mlp, Env);
        Record(store, mlp.RunId, 800, "images");

        Assert.Equal((5000.0, "tokens"), (store.Find(gpt.RunId)!.ItemsPerSecond, store.Find(gpt.RunId)!.ItemUnit));
        Assert.Equal((800.0, "images"), (store.Find(mlp.RunId)!.ItemsPerSecond, store.Find(mlp.RunId)!.ItemUnit));
        Assert.Equal(800.0, store.Steps(mlp.RunId).Single().ItemsPerSecond);

        var csv = ReportTables.RunsCsv(StudyData.Load(store)).Split('\n', StringSplitOptions.RemoveEmptyEntries);
        var header = csv[0].Split(',').ToList();
        Assert.DoesNotContain("tokens_per_s", header);
        int value = header.IndexOf("items_per_s"), unit = header.IndexOf("item_unit");
        var byRun = csv.Skip(1).Select(line => line.Split(',')).ToDictionary(f => f[0], f => (f[value], f[unit]));
        Assert.Equal(("5000", "tokens"), byRun[gpt.RunId]);
        Assert.Equal(("800", "images"), byRun[mlp.RunId]);
    }

    [Fact]
    public void A_store_that_called_every_throughput_tokens_per_s_is_migrated_with_the_unit_of_each_model()
    {
        string dir = TestSupport.TempDir();
        var gpt = TestSupport.TinyConfig();
        var mlp = TestSupport.TinyConfig("model.name=mlp", "model.depth=4");
        using (var store = ResultsStore.Open(dir))
        {
            store.BeginRun(gpt, Env);
            Record(store, gpt.RunId, 5000, "tokens");
            store.BeginRun(mlp, Env);
            Record(store, mlp.RunId, 800, "images");
        }
        // Back to schema 2 as it was written: tokens_per_s in both tables, no unit.
        using (var db = new SqliteConnection($"Data Source={Path.Combine(dir, ResultsStore.FileName)};Pooling=False"))
        {
            db.Open();
            using var cmd = db.CreateCommand();
            cmd.CommandText = """
                ALTER TABLE runs RENAME COLUMN items_per_s TO tokens_per_s; ALTER TABLE steps RENAME COLUMN items_per_s TO tokens_per_s;
                ALTER TABLE runs DROP COLUMN item_unit; PRAGMA user_version = 2;
                """;
            cmd.ExecuteNonQuery();
        }
        using (var store = ResultsStore.Open(dir))
        {
            Assert.Equal((5000.0, "tokens"), (store.Find(gpt.RunId)!.ItemsPerSecond, store.Find(gpt.RunId)!.ItemUnit));
            Assert.Equal((800.0, "images"), (store.Find(mlp.RunId)!.ItemsPerSecond, store.Find(mlp.RunId)!.ItemUnit));
            Assert.Equal(800.0, store.Steps(mlp.RunId).Single().ItemsPerSecond);
        }
        using (var store = ResultsStore.Open(dir)) // opening a migrated store again changes nothing
            Assert.Equal("images", store.Find(mlp.RunId)!.ItemUnit);
    }
}
