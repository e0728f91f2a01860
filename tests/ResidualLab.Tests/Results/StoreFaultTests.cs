using System.Diagnostics;
using Microsoft.Data.Sqlite;
using ResidualLab.Results.Store;

namespace ResidualLab.Tests.Results;

/// <summary>The store under real faults: a SIGKILL mid-write, and two processes writing at once.</summary>
[Trait(Slow.Category, Slow.Value)]
public class StoreFaultTests
{
    static readonly string[] Tiny =
    [
        "--set", "model.n_layer=1", "--set", "model.d_model=16", "--set", "model.n_head=2", "--set", "model.block_size=16",
        "--set", "train.batch_size=4", "--set", "train.eval_interval=25", "--set", "train.eval_batches=2", "--threads", "1",
    ];

    static string Corpus()
    {
        string path = Path.Combine(TestSupport.TempDir(), "corpus.txt");
        File.WriteAllText(path, TestSupport.TinyText());
        return path;
    }

    static Process Start(IEnumerable<string> args)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        psi.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "reslab.dll"));
        foreach (var a in args) psi.ArgumentList.Add(a);
        var p = Process.Start(psi)!;
        p.OutputDataReceived += (_, _) => { };
        p.ErrorDataReceived += (_, _) => { };
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        return p;
    }

    internal static string IntegrityCheck(string db)
    {
        using var c = new SqliteConnection($"Data Source={db};Pooling=False");
        c.Open();
        using var cmd = c.CreateCommand();
        cmd.CommandText = "PRAGMA integrity_check";
        return (string)cmd.ExecuteScalar()!;
    }

    static long StepRows(string db)
    {
        using var c = new SqliteConnection($"Data Source={db};Mode=ReadOnly;Pooling=False");
        c.Open();
        using var cmd = c.CreateCommand();
        cmd.CommandText = "SELECT count(*) FROM steps";
        try { return (long)cmd.ExecuteScalar()!; }
        catch (SqliteException) { return 0; } // not created yet
    }

    [Fact]
    public void Two_processes_writing_one_store_lose_nothing()
    {
        string corpus = Corpus(), results = TestSupport.TempDir();
        var runs = new[] { 1, 2 }.Select(seed => Start(["train", "--data", corpus, "--out", results,
            "--set", $"train.seed={seed}", "--set", "train.max_iters=150", .. Tiny])).ToList();
        foreach (var p in runs)
        {
            Assert.True(p.WaitForExit(TimeSpan.FromMinutes(3)), "a writer did not finish");
            Assert.Equal(0, p.ExitCode);
        }
        using var store = ResultsStore.OpenExisting(results);
        var done = store.Runs();
        Assert.Equal(2, done.Count);
        foreach (var run in done)
        {
            Assert.Equal("done", run.Status);
            Assert.Equal(Enumerable.Range(0, 150), store.Steps(run.RunId).Select(s => s.Step));
            Assert.Equal([25, 50, 75, 100, 125, 150], store.Evals(run.RunId).Select(e => e.Step));
        }
        Assert.Equal("ok", IntegrityCheck(store.FilePath));
    }

    [Fact]
    public void A_writer_killed_mid_run_leaves_a_consistent_store_and_an_interrupted_run()
    {
        string corpus = Corpus(), results = TestSupport.TempDir();
        string db = Path.Combine(results, ResultsStore.FileName);
        using (var writer = Start(["train", "--data", corpus, "--out", results, "--set", "train.max_iters=100000", .. Tiny]))
        {
            var clock = Stopwatch.StartNew();
            while ((!File.Exists(db) || StepRows(db) < 60) && !writer.HasExited && clock.Elapsed < TimeSpan.FromMinutes(2))
                Thread.Sleep(20);
            Assert.False(writer.HasExited, "the writer ended before it could be killed");
            writer.Kill(); // SIGKILL, wherever it is: possibly inside a transaction
            writer.WaitForExit();
        }
        Assert.Equal("ok", IntegrityCheck(db));
        using var store = ResultsStore.OpenExisting(results);
        var run = Assert.Single(store.Runs());
        var steps = store.Steps(run.RunId).Select(s => s.Step).ToList();
        Assert.True(steps.Count >= 60);
        Assert.Equal(Enumerable.Range(0, steps.Count), steps); // every committed step, no gap, no partial write
        Assert.Equal([run.RunId], store.MarkAbandoned());
        Assert.Equal("interrupted", store.Find(run.RunId)!.Status);
    }
}
