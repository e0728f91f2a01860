using System.Globalization;
using Microsoft.Data.Sqlite;
using ResidualLab.Config;
using ResidualLab.Data;
using ResidualLab.Training;

namespace ResidualLab.Results.Store;

/// <summary>
/// The results of one folder in one SQLite file (results.db): runs with their canonical config and
/// status, metrics per step and per evaluation, diagnostics (probe readings) and the environment of
/// each run. WAL journal and a busy timeout, so several runs (threads or processes) can write at once;
/// every write is one transaction. Thread-safe: calls are serialised on one connection. A write that
/// fails (a full disk, a read-only filesystem) is rolled back by SQLite, which leaves the database as
/// it was; it is a <see cref="StorageException"/> naming the file and what was being recorded.
/// </summary>
internal sealed class ResultsStore : IDisposable
{
    public const string FileName = "results.db";
    const int SchemaVersion = 4; // 3: throughput as items_per_s with its unit (was tokens_per_s for every family); 4: run facts

    readonly SqliteConnection _db;
    readonly object _gate = new();

    public string FilePath { get; }

    ResultsStore(string path)
    {
        FilePath = path;
        _db = new SqliteConnection(new SqliteConnectionStringBuilder
        {
            DataSource = path,
            Mode = SqliteOpenMode.ReadWriteCreate,
            Pooling = false,
            DefaultTimeout = 60,
        }.ToString());
        try
        {
            Locked("opening", () =>
            {
                _db.Open();
                NonQuery("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=60000;", null);
                CreateSchema();
                return 0;
            });
        }
        catch (SqliteException e) when (e.SqliteErrorCode is NotADatabase or Corrupt)
        {
            _db.Dispose();
            throw new ConfigException($"{path} is not a readable results store ({e.Message}); move it aside and run again, or give another results folder");
        }
        catch
        {
            _db.Dispose();
            throw;
        }
    }

    /// <summary>Runs <paramref name="body"/> on the connection, one call at a time; a storage fault names the store and <paramref name="action"/> ("recording run X in").</summary>
    T Locked<T>(string action, Func<T> body)
    {
        lock (_gate) return StorageException.Guard(action, FilePath, body);
    }

    void Locked(string action, Action body) => Locked(action, () => { body(); return 0; });

    const int Corrupt = 11, NotADatabase = 26; // SQLite's result codes SQLITE_CORRUPT and SQLITE_NOTADB

    /// <summary>Opens (creating if needed) the store of a results folder.</summary>
    public static ResultsStore Open(string folder)
    {
        StorageException.CreateFolder(folder);
        return new ResultsStore(Path.Combine(folder, FileName));
    }

    /// <summary>Opens an existing store read-write; a clear error when the folder has none.</summary>
    public static ResultsStore OpenExisting(string folder)
    {
        string path = Path.Combine(folder, FileName);
        if (!File.Exists(path))
            throw new ConfigException($"'{folder}' has no {FileName}; give the results folder of a sweep or a training run (e.g. results/connections)");
        return new ResultsStore(path);
    }

    void CreateSchema()
    {
        long version = UserVersion();
        if (version > SchemaVersion)
            throw new ConfigException($"{FilePath} was written by a newer reslab (schema {version}, this one reads {SchemaVersion})");
        NonQuery("""
            CREATE TABLE IF NOT EXISTS runs(
              run_id TEXT PRIMARY KEY, label TEXT NOT NULL, model TEXT NOT NULL, connection TEXT NOT NULL,
              depth INTEGER NOT NULL, seed INTEGER NOT NULL, config TEXT NOT NULL,
              status TEXT NOT NULL, error TEXT, started_at TEXT NOT NULL, ended_at TEXT,
              host TEXT NOT NULL, pid INTEGER NOT NULL,
              steps INTEGER NOT NULL DEFAULT 0, parameters INTEGER NOT NULL DEFAULT 0,
              mean_step_ms REAL NOT NULL DEFAULT 0, items_per_s REAL NOT NULL DEFAULT 0, item_unit TEXT,
              peak_rss_bytes INTEGER NOT NULL DEFAULT 0, train_loss REAL, val_loss REAL, test_loss REAL,
              data_name TEXT, data_sha256 TEXT);
            CREATE TABLE IF NOT EXISTS steps(
              run_id TEXT NOT NULL, step INTEGER NOT NULL, loss REAL, lr REAL, grad_norm REAL,
              step_ms REAL, items_per_s REAL, PRIMARY KEY(run_id, step)) WITHOUT ROWID;
            CREATE TABLE IF NOT EXISTS evals(
              run_id TEXT NOT NULL, step INTEGER NOT NULL, train_loss REAL, val_loss REAL, test_loss REAL,
              PRIMARY KEY(run_id, step)) WITHOUT ROWID;
            CREATE TABLE IF NOT EXISTS diagnostics(
              run_id TEXT NOT NULL, step INTEGER NOT NULL, name TEXT NOT NULL, idx INTEGER NOT NULL, value REAL,
              PRIMARY KEY(run_id, name, step, idx)) WITHOUT ROWID;
            CREATE TABLE IF NOT EXISTS labels(
              run_id TEXT NOT NULL, name TEXT NOT NULL, idx INTEGER NOT NULL, label TEXT NOT NULL, PRIMARY KEY(run_id, name, idx)) WITHOUT ROWID;
            CREATE TABLE IF NOT EXISTS facts(
              run_id TEXT NOT NULL, name TEXT NOT NULL, value REAL, PRIMARY KEY(run_id, name)) WITHOUT ROWID;
            CREATE TABLE IF NOT EXISTS environment(
              run_id TEXT PRIMARY KEY, reslab_version TEXT, git_commit TEXT, dotnet TEXT, torchsharp TEXT, libtorch TEXT,
              device TEXT, threads INTEGER, host TEXT, os TEXT, git_dirty INTEGER, cpu TEXT, onednn TEXT);
            CREATE TABLE IF NOT EXISTS cluster_tasks(
              job_id TEXT NOT NULL, task INTEGER NOT NULL, run_id TEXT NOT NULL, submitted_at TEXT NOT NULL,
              PRIMARY KEY(job_id, task)) WITHOUT ROWID;
            """, null);
        AddColumnIfMissing("environment", "reslab_version", "TEXT");
        AddColumnIfMissing("environment", "git_dirty", "INTEGER"); // 1 or 0; NULL: not known
        AddColumnIfMissing("environment", "cpu", "TEXT"); // NULL: recorded before the store kept the CPU
        AddColumnIfMissing("environment", "onednn", "TEXT"); // NULL: recorded before the store kept the oneDNN choice
        AddColumnIfMissing("runs", "test_loss", "REAL"); // stores from before the test split
        AddColumnIfMissing("evals", "test_loss", "REAL");
        AddColumnIfMissing("runs", "data_name", "TEXT"); // stores from before data provenance: NULL, not compared
        AddColumnIfMissing("runs", "data_sha256", "TEXT");
        if (version < 3) NameThroughputHonestly();
        if (version < 4) MoveFactsOutOfDiagnostics();
        if (version < SchemaVersion) NonQuery($"PRAGMA user_version = {SchemaVersion};", null); // an up-to-date store opens without a write
    }

    /// <summary>
    /// Schema 2 called every family's throughput tokens_per_s, images/s of the classifiers included: the
    /// columns become items_per_s, and the unit is read from the model (the GPT counts tokens, the vision
    /// models images). Older builds then refuse the store (its schema is newer) instead of misreading it.
    /// </summary>
    void NameThroughputHonestly()
    {
        foreach (var table in new[] { "runs", "steps" })
            if (HasColumn(table, "tokens_per_s")) NonQuery($"ALTER TABLE {table} RENAME COLUMN tokens_per_s TO items_per_s;", null);
        AddColumnIfMissing("runs", "item_unit", "TEXT");
        NonQuery("UPDATE runs SET item_unit = CASE model WHEN 'gpt' THEN 'tokens' ELSE 'images' END WHERE item_unit IS NULL;", null);
    }

    /// <summary>
    /// Before schema 4 a GPT run recorded its FLOPs per step (and a matched run its width) as diagnostics at its first
    /// step: they become the run's facts.
    /// </summary>
    void MoveFactsOutOfDiagnostics()
    {
        string names = string.Join(", ", new[] { RunFact.FlopsPerStep, RunFact.MatchedWidth, RunFact.MatchedHeads }.Select(n => $"'{n}'"));
        NonQuery($"""
            INSERT OR IGNORE INTO facts(run_id, name, value) SELECT run_id, name, value FROM diagnostics WHERE name IN ({names}) AND idx = 0;
            DELETE FROM diagnostics WHERE name IN ({names});
            """, null);
    }

    bool HasColumn(string table, string column)
    {
        using var info = Command($"SELECT count(*) FROM pragma_table_info('{table}') WHERE name = $column", null, ("$column", column));
        return (long)info.ExecuteScalar()! > 0;
    }

    /// <summary>
    /// Stores written before a column existed gain it empty (NULL) in their old rows; the schema version
    /// stays, so older builds still open the store and ignore the column.
    /// </summary>
    void AddColumnIfMissing(string table, string column, string type)
    {
        if (!HasColumn(table, column)) NonQuery($"ALTER TABLE {table} ADD COLUMN {column} {type};", null);
    }

    /// <summary>Records a run as running (a rerun replaces the old attempt and its metrics).</summary>
    /// <param name="fromStep">Metrics of earlier steps are kept (a resumed run); later ones are deleted.</param>
    public void BeginRun(RunConfig config, RunEnvironment environment, int fromStep = 0)
    {
        Locked($"recording the start of run {config.RunId} in", () =>
        {
            using var tx = _db.BeginTransaction();
            foreach (var table in new[] { "steps", "evals", "diagnostics" })
                NonQuery($"DELETE FROM {table} WHERE run_id = $id AND step >= $from", tx, ("$id", config.RunId), ("$from", fromStep));
            NonQuery("DELETE FROM environment WHERE run_id = $id", tx, ("$id", config.RunId));
            // The data a run trained on stays recorded across reruns, so a rerun on changed data is caught too.
            NonQuery("""
                INSERT INTO runs(run_id, label, model, connection, depth, seed, config, status, started_at, host, pid)
                VALUES($id, $label, $model, $conn, $depth, $seed, $config, $status, $start, $host, $pid)
                ON CONFLICT(run_id) DO UPDATE SET label = excluded.label, model = excluded.model, connection = excluded.connection,
                  depth = excluded.depth, seed = excluded.seed, config = excluded.config, status = excluded.status, error = NULL,
                  started_at = excluded.started_at, ended_at = NULL, host = excluded.host, pid = excluded.pid, steps = 0, parameters = 0,
                  mean_step_ms = 0, items_per_s = 0, item_unit = NULL, peak_rss_bytes = 0, train_loss = NULL, val_loss = NULL, test_loss = NULL
                """, tx,
                ("$id", config.RunId), ("$label", config.Label), ("$model", config.ModelName),
                ("$conn", config.Connection.Name), ("$depth", config.Model.Depth), ("$seed", config.Train.Seed),
                ("$config", config.Canonical), ("$status", RunState.Running), ("$start", Now()),
                ("$host", Environment.MachineName), ("$pid", Environment.ProcessId));
            NonQuery("""
                INSERT INTO environment(run_id, reslab_version, git_commit, dotnet, torchsharp, libtorch, device, threads, host, os, git_dirty, cpu, onednn)
                VALUES($id, $version, $git, $dotnet, $ts, $lt, $device, $threads, $host, $os, $dirty, $cpu, $onednn)
                """, tx,
                ("$id", config.RunId), ("$version", environment.Version), ("$git", environment.GitCommit), ("$dotnet", environment.DotNet),
                ("$ts", environment.TorchSharp), ("$lt", environment.LibTorch), ("$device", environment.Device),
                ("$threads", environment.Threads), ("$host", environment.Host), ("$os", environment.Os), ("$dirty", environment.GitDirty),
                ("$cpu", environment.Cpu), ("$onednn", environment.OneDnn));
            tx.Commit();
        });
    }

    public void AddMetrics(string runId, IReadOnlyList<StepMetrics> steps, IReadOnlyList<EvalMetrics> evals, IReadOnlyList<Diagnostic> diagnostics)
    {
        if (steps.Count + evals.Count + diagnostics.Count == 0) return;
        Locked($"recording the metrics of run {runId} in", () =>
        {
            using var tx = _db.BeginTransaction();
            using (var insert = Command("INSERT OR REPLACE INTO steps VALUES($id, $step, $loss, $lr, $grad, $ms, $tps)", tx,
                       ("$id", runId), ("$step", 0), ("$loss", 0.0), ("$lr", 0.0), ("$grad", 0.0), ("$ms", 0.0), ("$tps", 0.0)))
                foreach (var s in steps)
                    Run(insert, s.Step, s.Loss, s.Lr, s.GradNorm, s.StepMs, s.ItemsPerSecond);
            using (var insert = Command("INSERT OR REPLACE INTO evals VALUES($id, $step, $train, $val, $test)", tx,
                       ("$id", runId), ("$step", 0), ("$train", 0.0), ("$val", 0.0), ("$test", 0.0)))
                foreach (var e in evals)
                    Run(insert, e.Step, e.TrainLoss, e.ValLoss, e.TestLoss);
            using (var insert = Command("INSERT OR REPLACE INTO diagnostics VALUES($id, $step, $name, $idx, $value)", tx,
                       ("$id", runId), ("$step", 0), ("$name", ""), ("$idx", 0), ("$value", 0.0)))
                foreach (var d in diagnostics)
                    Run(insert, d.Step, d.Name, d.Index, d.Value);
            tx.Commit();
        });
    }

    /// <summary>Records what a run's model as built states (<see cref="RunFact"/>), replacing what an earlier attempt stated.</summary>
    public void RecordFacts(string runId, IReadOnlyList<RunFact> facts) => Locked($"recording the facts of run {runId} in", () =>
    {
        using var tx = _db.BeginTransaction();
        NonQuery("DELETE FROM facts WHERE run_id = $id", tx, ("$id", runId));
        using (var insert = Command("INSERT INTO facts VALUES($id, $name, $value)", tx, ("$id", runId), ("$name", ""), ("$value", 0.0)))
            foreach (var f in facts)
                Run(insert, f.Name, f.Value);
        tx.Commit();
    });

    /// <summary>
    /// Records the data a run trains on. A run whose data has the name of data another run of this store
    /// trained on (the same file, corpus or image folder) but other bytes is refused: their numbers would
    /// not compare.
    /// </summary>
    public void RecordData(string runId, DataIdentity data)
    {
        Locked($"recording the data of run {runId} in", () =>
        {
            using var tx = _db.BeginTransaction();
            using (var other = Command("""
                       SELECT run_id, data_sha256 FROM runs WHERE data_name = $name AND data_sha256 <> $sha ORDER BY run_id = $id DESC, run_id LIMIT 1
                       """, tx, ("$id", runId), ("$name", data.Name), ("$sha", data.Sha256)))
            using (var r = other.ExecuteReader())
                if (r.Read())
                    throw new ConfigException(DataMismatch(data.Name, r.GetString(0), r.GetString(1), runId, data.Sha256, "would train"));
            NonQuery("UPDATE runs SET data_name = $name, data_sha256 = $sha WHERE run_id = $id", tx,
                ("$id", runId), ("$name", data.Name), ("$sha", data.Sha256));
            tx.Commit();
        });
    }

    /// <summary>Why this store's runs cannot be compared, when two trained on different bytes under one data name; null when they can.</summary>
    public string? DataConflict() => Locked("reading", () =>
        {
            using var cmd = Command("""
                SELECT a.data_name, a.run_id, a.data_sha256, b.run_id, b.data_sha256 FROM runs a JOIN runs b
                  ON a.data_name = b.data_name AND a.data_sha256 < b.data_sha256
                ORDER BY a.data_name, a.run_id, b.run_id LIMIT 1
                """, null);
            using var r = cmd.ExecuteReader();
            return r.Read() ? DataMismatch(r.GetString(0), r.GetString(1), r.GetString(2), r.GetString(3), r.GetString(4), "trained") : null;
        });

    string DataMismatch(string name, string firstRun, string firstSha, string secondRun, string secondSha, string verb) =>
        $"data '{name}' changed under the same name: run {firstRun} trained on sha256 {firstSha}, run {secondRun} {verb} on sha256 {secondSha} "
        + $"(store {FilePath}); restore the data the first run used, or train on the new data into another results folder (--out)";

    /// <summary>Records the outcome of a run that ended (done, diverged or interrupted on request).</summary>
    /// <param name="itemsPerSecond">Mean throughput in <paramref name="itemUnit"/>s ("tokens", "images") per second; the unit is null when no step ran.</param>
    public void EndRun(string runId, TrainResult result, double itemsPerSecond, long peakRssBytes, string? itemUnit = null)
    {
        string status = result.Status switch
        {
            RunStatus.Done => RunState.Done,
            RunStatus.Diverged => RunState.Diverged,
            _ => RunState.Interrupted,
        };
        Locked($"recording the end of run {runId} in", () => NonQuery("""
                UPDATE runs SET status = $status, error = $error, ended_at = $end, steps = $steps, parameters = $params,
                  mean_step_ms = $ms, items_per_s = $ips, item_unit = $unit, peak_rss_bytes = $rss, train_loss = $train, val_loss = $val, test_loss = $test
                WHERE run_id = $id
                """, null,
                ("$id", runId), ("$status", status), ("$error", result.Note), ("$end", Now()), ("$steps", result.Steps),
                ("$params", result.Parameters), ("$ms", result.MeanStepMs),
                ("$ips", itemsPerSecond), ("$unit", itemUnit), ("$rss", peakRssBytes),
                ("$train", result.FinalEval?.TrainLoss), ("$val", result.FinalEval?.ValLoss),
                ("$test", result.FinalEval?.TestLoss)));
    }

    /// <summary>Records a run that threw: its status becomes failed, with the error text.</summary>
    public void FailRun(string runId, string error)
    {
        Locked($"recording the failure of run {runId} in", () =>
            NonQuery("UPDATE runs SET status = $status, error = $error, ended_at = $end WHERE run_id = $id", null,
                ("$id", runId), ("$status", RunState.Failed), ("$error", error), ("$end", Now())));
    }

    /// <summary>
    /// Marks runs left 'running' by a process that no longer exists on this host (killed, crashed) as
    /// interrupted, so a sweep redoes them. Runs of live processes, or of other hosts, are left alone.
    /// </summary>
    public IReadOnlyList<string> MarkAbandoned() => Locked("marking the runs of processes that are gone in", () =>
        {
            var abandoned = Runs().Where(r => r.Status == RunState.Running && r.Host == Environment.MachineName
                                             && r.Pid != Environment.ProcessId && !FolderLock.IsAlive(r.Pid))
                                  .Select(r => r.RunId).ToList();
            foreach (var id in abandoned)
                NonQuery("UPDATE runs SET status = $status, error = $error WHERE run_id = $id AND status = $running", null,
                    ("$id", id), ("$status", RunState.Interrupted), ("$running", RunState.Running),
                    ("$error", "the process running it ended before the run finished (killed or crashed)"));
            return abandoned;
        });

    /// <summary>Records a cluster job array: task i of job <paramref name="jobId"/> trains <paramref name="runIds"/>[i].</summary>
    public void RecordSubmission(string jobId, IReadOnlyList<string> runIds)
    {
        Locked($"recording Slurm job {jobId} in", () =>
        {
            using var tx = _db.BeginTransaction();
            string now = Now();
            for (int i = 0; i < runIds.Count; i++)
                NonQuery("INSERT OR REPLACE INTO cluster_tasks VALUES($job, $task, $id, $at)", tx,
                    ("$job", jobId), ("$task", i), ("$id", runIds[i]), ("$at", now));
            tx.Commit();
        });
    }

    /// <summary>Every cluster task submitted for this folder, oldest first.</summary>
    public IReadOnlyList<ClusterTask> Submissions() => Locked("reading", () =>
        {
            using var cmd = Command("SELECT job_id, task, run_id, submitted_at FROM cluster_tasks ORDER BY submitted_at, CAST(job_id AS INTEGER), task", null);
            using var r = cmd.ExecuteReader();
            var tasks = new List<ClusterTask>();
            while (r.Read()) tasks.Add(new ClusterTask(r.GetString(0), r.GetInt32(1), r.GetString(2), ParseTime(r.GetString(3))));
            return tasks;
        });

    public RunRecord? Find(string runId) => Runs("WHERE run_id = $id", ("$id", runId)).FirstOrDefault();

    public IReadOnlyList<RunRecord> Runs() => Runs("");

    IReadOnlyList<RunRecord> Runs(string where, params (string, object?)[] args) => Locked("reading", () =>
        {
            using var cmd = Command($"""
                SELECT run_id, label, model, connection, depth, seed, config, status, error, started_at, ended_at, host, pid,
                       steps, parameters, mean_step_ms, items_per_s, peak_rss_bytes, train_loss, val_loss, test_loss, item_unit,
                       data_name, data_sha256
                FROM runs {where} ORDER BY connection, depth, seed, run_id
                """, null, args);
            using var r = cmd.ExecuteReader();
            var runs = new List<RunRecord>();
            while (r.Read())
                runs.Add(new RunRecord(r.GetString(0), r.GetString(1), r.GetString(2), r.GetString(3), r.GetInt32(4), r.GetInt64(5),
                    r.GetString(6), r.GetString(7), r.IsDBNull(8) ? null : r.GetString(8), ParseTime(r.GetString(9)),
                    r.IsDBNull(10) ? null : ParseTime(r.GetString(10)), r.GetString(11), r.GetInt32(12), r.GetInt32(13),
                    r.GetInt64(14), r.GetDouble(15), r.GetDouble(16), r.GetInt64(17),
                    r.IsDBNull(18) ? null : r.GetDouble(18), r.IsDBNull(19) ? null : r.GetDouble(19))
                {
                    TestLoss = r.IsDBNull(20) ? null : r.GetDouble(20), ItemUnit = r.IsDBNull(21) ? null : r.GetString(21),
                    DataName = r.IsDBNull(22) ? null : r.GetString(22), DataSha256 = r.IsDBNull(23) ? null : r.GetString(23),
                });
            return runs;
        });

    public IReadOnlyList<StepRow> Steps(string runId) => Read(
        "SELECT step, loss, lr, grad_norm, step_ms, items_per_s FROM steps WHERE run_id = $id ORDER BY step", runId,
        r => new StepRow(r.GetInt32(0), Real(r, 1), Real(r, 2), Real(r, 3), Real(r, 4), Real(r, 5)));

    public IReadOnlyList<EvalRow> Evals(string runId) => Read(
        "SELECT step, train_loss, val_loss, test_loss FROM evals WHERE run_id = $id ORDER BY step", runId,
        r => new EvalRow(r.GetInt32(0), Real(r, 1), Real(r, 2), Real(r, 3)));

    public IReadOnlyList<DiagnosticRow> Diagnostics(string runId) => Read(
        "SELECT step, name, idx, value FROM diagnostics WHERE run_id = $id ORDER BY name, step, idx", runId,
        r => new DiagnosticRow(r.GetInt32(0), r.GetString(1), r.GetInt32(2), Real(r, 3)));

    /// <summary>Records the names of the indices of a run's per-layer readings (<see cref="Training.ITrainingTask.ReadingLabels"/>).</summary>
    public void RecordLabels(string runId, IReadOnlyDictionary<string, IReadOnlyList<string>> labels) => Locked($"recording the reading labels of run {runId} in", () =>
    {
        using var tx = _db.BeginTransaction();
        NonQuery("DELETE FROM labels WHERE run_id = $id", tx, ("$id", runId));
        using (var insert = Command("INSERT INTO labels VALUES($id, $name, $idx, $label)", tx, ("$id", runId), ("$name", ""), ("$idx", 0), ("$label", "")))
            foreach (var (name, names) in labels)
                for (int i = 0; i < names.Count; i++)
                    Run(insert, name, i, names[i]);
        tx.Commit();
    });

    /// <summary>The name of index <c>idx</c> of each labelled reading of a run: (reading, idx) to label.</summary>
    public IReadOnlyDictionary<(string Name, int Index), string> Labels(string runId) => Read(
        "SELECT name, idx, label FROM labels WHERE run_id = $id", runId, r => (r.GetString(0), r.GetInt32(1), r.GetString(2)))
        .ToDictionary(l => (l.Item1, l.Item2), l => l.Item3);

    /// <summary>The facts a run's model stated, by name.</summary>
    public IReadOnlyDictionary<string, double> Facts(string runId) => Read(
        "SELECT name, value FROM facts WHERE run_id = $id ORDER BY name", runId, r => (r.GetString(0), Real(r, 1)))
        .ToDictionary(f => f.Item1, f => f.Item2);

    public RunEnvironment? EnvironmentOf(string runId) => Read(
        "SELECT reslab_version, git_commit, dotnet, torchsharp, libtorch, device, threads, host, os, git_dirty, cpu, onednn FROM environment WHERE run_id = $id", runId,
        r => new RunEnvironment(r.IsDBNull(0) ? RunEnvironment.Unknown : r.GetString(0), r.GetString(1), r.GetString(2), r.GetString(3),
            r.GetString(4), r.GetString(5), r.GetInt32(6), r.GetString(7), r.GetString(8), r.IsDBNull(9) ? null : r.GetBoolean(9),
            r.IsDBNull(10) ? null : r.GetString(10), r.IsDBNull(11) ? null : r.GetString(11))).FirstOrDefault();

    IReadOnlyList<T> Read<T>(string sql, string runId, Func<SqliteDataReader, T> row) => Locked("reading", () =>
        {
            using var cmd = Command(sql, null, ("$id", runId));
            using var r = cmd.ExecuteReader();
            var rows = new List<T>();
            while (r.Read()) rows.Add(row(r));
            return rows;
        });

    /// <summary>SQLite has no NaN (its driver refuses one), so a NaN is stored as NULL; infinities are stored as they are.</summary>
    static object Storable(object? value) => value is null or double.NaN ? DBNull.Value : value;

    /// <summary>A measured value: NULL (a NaN when written) reads back as NaN.</summary>
    static double Real(SqliteDataReader r, int column) => r.IsDBNull(column) ? double.NaN : r.GetDouble(column);

    static string Now() => DateTimeOffset.UtcNow.ToString("O", CultureInfo.InvariantCulture);

    static DateTimeOffset ParseTime(string text) => DateTimeOffset.Parse(text, CultureInfo.InvariantCulture, DateTimeStyles.RoundtripKind);

    static void Run(SqliteCommand insert, params object?[] values)
    {
        // Parameter 0 is the run id; the rest follow in order.
        for (int i = 0; i < values.Length; i++) insert.Parameters[i + 1].Value = Storable(values[i]);
        insert.ExecuteNonQuery();
    }

    void NonQuery(string sql, SqliteTransaction? tx, params (string Name, object? Value)[] args)
    {
        using var cmd = Command(sql, tx, args);
        cmd.ExecuteNonQuery();
    }

    SqliteCommand Command(string sql, SqliteTransaction? tx, params (string Name, object? Value)[] args)
    {
        var cmd = _db.CreateCommand();
        cmd.CommandText = sql;
        cmd.Transaction = tx;
        foreach (var (name, value) in args) cmd.Parameters.AddWithValue(name, Storable(value));
        return cmd;
    }

    long UserVersion()
    {
        using var cmd = Command("PRAGMA user_version;", null);
        return (long)cmd.ExecuteScalar()!;
    }

    public void Dispose() => _db.Dispose();
}
