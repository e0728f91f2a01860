using System.Text.RegularExpressions;
using Microsoft.Data.Sqlite;
using ResidualLab.Checkpoints;
using ResidualLab.Results.Store;
using ResidualLab.Tests.Cli;
using ResidualLab.Training;

namespace ResidualLab.Tests.Results;

/// <summary>
/// Faults of the filesystem under reslab: a disk that fills (a real tmpfs, filled by another file as
/// another program would), a read-only filesystem, a run folder deleted mid-run. Each ends in one line
/// naming the path, what failed and what to do; the store passes SQLite's integrity check, finished
/// runs keep their rows and files, no temporary file is left, and running again finishes what is missing.
/// </summary>
[Trait(Slow.Category, Slow.Value)]
public class StorageFaultTests
{
    static readonly string[] Tiny =
    [
        "--set", "model.n_layer=1", "--set", "model.d_model=16", "--set", "model.n_head=2", "--set", "model.block_size=16",
        "--set", "train.batch_size=4", "--set", "train.eval_interval=50", "--set", "train.eval_batches=2", "--threads", "1",
    ];

    static string Corpus()
    {
        string path = Path.Combine(TestSupport.TempDir(), "corpus.txt");
        File.WriteAllText(path, TestSupport.TinyText());
        return path;
    }

    static void AssertNoTemporaryFiles(string root) =>
        Assert.Empty(Directory.GetFiles(root, "*.tmp", SearchOption.AllDirectories));

    static void AssertNoTypeName(string line) => Assert.DoesNotMatch(@"\w+Exception\b", line);

    [Fact]
    public void A_full_disk_before_training_is_one_line_naming_the_store_and_what_to_do()
    {
        using var disk = SmallFilesystem.Mount(100);
        string results = Path.Combine(disk.Root, "r");

        var line = CliProcess.AssertOneLineError(CliProcess.Run(["train", "--data", Corpus(), "--out", results, "--set", "train.max_iters=100", .. Tiny]), exitCode: 1);

        Assert.Contains($"{results}/results.db failed: no space left on the filesystem at {disk.Root}; free space on {disk.Root} or pass --out elsewhere, then run the same command again", line);
        AssertNoTypeName(line);
        Assert.Equal("ok", StoreFaultTests.IntegrityCheck(Path.Combine(results, ResultsStore.FileName)));
    }

    [Fact]
    public void A_sweep_that_fills_its_disk_stops_in_one_line_keeps_what_finished_and_a_rerun_trains_only_what_is_missing()
    {
        using var disk = SmallFilesystem.Mount(8192);
        string sweepFile = Path.Combine(TestSupport.TempDir(), "seeds.toml");
        File.WriteAllText(sweepFile, $"""
            [data]
            path = "{Corpus()}"
            [train]
            max_iters = 300
            checkpoint_interval = 10
            [sweep]
            "train.seed" = [1, 2, 3]
            """);
        string results = Path.Combine(disk.Root, "seeds");
        string[] sweep = ["sweep", sweepFile, "--out", disk.Root, "--parallel", "1", "--no-estimate", .. Tiny];
        string runs = Path.Combine(results, "runs");
        bool Finished(string dir) => File.Exists(Path.Combine(dir, "result.json"));
        // The first run is done and the second has written a checkpoint: fill the disk under it.
        bool SecondRunCheckpointed() => Directory.Exists(runs) && Directory.GetDirectories(runs) is var dirs
            && dirs.Any(Finished) && dirs.Any(d => !Finished(d) && TrainingCheckpoint.List(d).Count > 0);

        var (failed, filled) = CliProcess.RunAndMeanwhile(sweep, SecondRunCheckpointed, disk.Fill);

        Assert.True(filled, $"the sweep ended before its disk could be filled: {failed.StdErr}");
        var line = CliProcess.AssertOneLineError(failed, exitCode: 1);
        Assert.Matches($"^reslab: error: .+ {Regex.Escape(results)}/.+ failed: no space left on the filesystem at {Regex.Escape(disk.Root)}; free space on {Regex.Escape(disk.Root)}, "
            + "then run the same sweep again: it trains the 2 run\\(s\\) left; the results store and the 1 run\\(s\\) finished are intact; run [0-9a-f]{12} keeps its checkpoint at step [1-9]\\d*0$", line);
        AssertNoTypeName(line);
        string db = Path.Combine(results, ResultsStore.FileName);
        Assert.Equal("ok", StoreFaultTests.IntegrityCheck(db));
        AssertNoTemporaryFiles(disk.Root);
        RunRecord first;
        using (var store = ResultsStore.OpenExisting(results))
        {
            first = Assert.Single(store.Runs(), r => r.Status == RunState.Done);
            Assert.Equal(Enumerable.Range(0, 300), store.Steps(first.RunId).Select(s => s.Step));
            Assert.Equal([50, 100, 150, 200, 250, 300], store.Evals(first.RunId).Select(e => e.Step));
        }
        foreach (var file in new[] { "result.json", "model.pt", "metrics.jsonl", "config.txt", "data.json" })
            Assert.True(File.Exists(Path.Combine(runs, first.RunId, file)), $"the finished run lost {file}");

        disk.Free();
        var rerun = CliProcess.Run(sweep);

        Assert.True(rerun.ExitCode == 0, rerun.StdErr);
        Assert.Contains("3 runs: 1 already finished (skipped), 2 trained, 0 unfinished", rerun.StdOut);
        Assert.Matches(@"resuming at step [1-9]\d*0/300 from checkpoint-\d{8}\.bin", rerun.StdOut);
        Assert.Equal("ok", StoreFaultTests.IntegrityCheck(db));
        using (var store = ResultsStore.OpenExisting(results))
        {
            Assert.All(store.Runs(), r => Assert.Equal(RunState.Done, r.Status));
            Assert.Equal(first.EndedAt, store.Find(first.RunId)!.EndedAt); // not trained again
            foreach (var run in store.Runs()) Assert.Equal(Enumerable.Range(0, 300), store.Steps(run.RunId).Select(s => s.Step));
        }
        AssertNoTemporaryFiles(disk.Root);
    }

    [Fact]
    public void Report_and_export_on_a_full_disk_fail_in_one_line_and_leave_nothing_half_written()
    {
        using var disk = SmallFilesystem.Mount(4096);
        string results = Path.Combine(disk.Root, "r");
        var train = CliProcess.Run(["train", "--data", Corpus(), "--out", results, "--set", "train.max_iters=20", .. Tiny]);
        Assert.True(train.ExitCode == 0, train.StdErr);
        string runId = Path.GetFileName(Directory.GetDirectories(Path.Combine(results, "runs")).Single());
        disk.Fill();

        var report = CliProcess.AssertOneLineError(CliProcess.Run(["report", results]), exitCode: 1);
        // SQLite cannot even open the store for reading without room for its -shm file.
        Assert.Contains($"{results}/results.db failed: no space left on the filesystem at {disk.Root}; free space on {disk.Root}, "
                        + $"then run 'reslab report {results}' again; the results store is unchanged (a report only reads it)", report);
        var export = CliProcess.AssertOneLineError(CliProcess.Run(["export", runId, "--results", results]), exitCode: 1);
        Assert.Contains($"writing {results}/runs/{runId}/model.safetensors failed: no space left on the filesystem at {disk.Root}; "
                        + $"free space on {disk.Root} or pass --out elsewhere, then run the same command again; the run folder is unchanged", export);
        foreach (var line in new[] { report, export }) AssertNoTypeName(line);

        AssertNoTemporaryFiles(disk.Root);
        Assert.False(File.Exists(Path.Combine(results, "report.html")));
        disk.Free();
        Assert.Equal("ok", StoreFaultTests.IntegrityCheck(Path.Combine(results, ResultsStore.FileName)));
        var exported = CliProcess.Run(["export", runId, "--results", results]);
        Assert.True(exported.ExitCode == 0, exported.StdErr);
        Assert.NotNull(SafeTensors.Read(Path.Combine(results, "runs", runId, "model.safetensors")));
    }

    [Fact]
    public void A_read_only_results_folder_is_one_line_saying_so()
    {
        using var disk = SmallFilesystem.Mount(4096);
        string results = Path.Combine(disk.Root, "r");
        var train = CliProcess.Run(["train", "--data", Corpus(), "--out", results, "--set", "train.max_iters=20", .. Tiny]);
        Assert.True(train.ExitCode == 0, train.StdErr);
        disk.RemountReadOnly();

        var again = CliProcess.AssertOneLineError(CliProcess.Run(["train", "--data", Corpus(), "--out", results, "--set", "train.max_iters=20", "--set", "train.seed=2", .. Tiny]), exitCode: 1);
        Assert.Contains($"opening {results}/results.db failed: the filesystem at {disk.Root} is read-only; make {disk.Root} writable or pass --out elsewhere", again);
        var report = CliProcess.AssertOneLineError(CliProcess.Run(["report", results]), exitCode: 1);
        Assert.Contains($"the filesystem at {disk.Root} is read-only", report);
        foreach (var line in new[] { again, report }) AssertNoTypeName(line);
    }

    [Fact]
    public void A_run_folder_deleted_while_training_is_one_line_saying_it_vanished()
    {
        string results = TestSupport.TempDir();
        string runs = Path.Combine(results, "runs");
        bool Checkpointed() => Directory.Exists(runs) && Directory.GetDirectories(runs).Any(d => TrainingCheckpoint.List(d).Count > 0);

        var (outcome, deleted) = CliProcess.RunAndMeanwhile(
            ["train", "--data", Corpus(), "--out", results, "--set", "train.max_iters=100000", "--set", "train.checkpoint_interval=10", .. Tiny],
            Checkpointed, () => Directory.Delete(runs, recursive: true));

        Assert.True(deleted, $"the run ended before its folder could be deleted: {outcome.StdErr}");
        var line = CliProcess.AssertOneLineError(outcome, exitCode: 1);
        Assert.Matches($"{Regex.Escape(runs)}/[0-9a-f]{{12}}/.+ failed: it or its folder no longer exists \\(deleted or moved while reslab ran\\); "
                       + $"leave {Regex.Escape(runs)}/[0-9a-f]{{12}} in place while reslab runs or pass --out elsewhere, then run the same command again; "
                       + "the results store is intact; run [0-9a-f]{12} has no checkpoint and starts over$", line);
        AssertNoTypeName(line);
        using var store = ResultsStore.OpenExisting(results);
        Assert.Equal(RunState.Failed, Assert.Single(store.Runs()).Status);
    }

    public static TheoryData<Exception, string?> Faults() => new()
    {
        { new IOException("No space left on device", 28), "Full" },
        { new IOException("Disk quota exceeded", 122), "Full" },
        { new SqliteException("SQLite Error 13: 'database or disk is full'.", 13), "Full" },
        { new IOException("Read-only file system", 30), "ReadOnly" },
        { new SqliteException("SQLite Error 8: 'attempt to write a readonly database'.", 8), "ReadOnly" },
        { new UnauthorizedAccessException("Access to the path is denied."), "Denied" },
        { new DirectoryNotFoundException("Could not find a part of the path."), "Gone" },
        { new SqliteException("SQLite Error 8: 'attempt to write a readonly database'.", 8, 1032), "Gone" },
        { new SqliteException("SQLite Error 5: 'database is locked'.", 5), "Busy" },
        { new IOException("Input/output error", 5), "Failed" },
        { new SqliteException("SQLite Error 10: 'disk I/O error'.", 10), "Failed" },
        // Not faults of the storage: a bad file reslab reads, a refused query, a bug.
        { new SafeTensorsException("truncated header"), null },
        { new InvalidDataException("not an IDX file"), null },
        { new SqliteException("SQLite Error 19: 'UNIQUE constraint failed'.", 19), null },
        { new InvalidOperationException("a bug"), null },
    };

    [Theory]
    [MemberData(nameof(Faults))]
    public void Storage_faults_are_told_apart_from_bad_files_and_bugs(Exception error, string? fault) =>
        Assert.Equal(fault, StorageException.FaultOf(error)?.ToString());
}
