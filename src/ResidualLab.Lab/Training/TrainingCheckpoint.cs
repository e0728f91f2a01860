using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.RegularExpressions;
using TorchSharp;
using static TorchSharp.torch;

namespace ResidualLab.Training;

/// <summary>A checkpoint file of a run folder and the step it resumes at.</summary>
internal sealed record CheckpointFile(string Path, int Step);

/// <summary>Where and how often a run writes its resumable checkpoints, how many it keeps, and the one it continues from.</summary>
/// <param name="Interval">Steps between checkpoints; 0 writes none during training.</param>
/// <param name="Keep">The newest checkpoints kept; older ones are deleted once a newer one is written.</param>
/// <param name="ResumeFrom">The checkpoint to continue from (<see cref="TrainingCheckpoint.Latest"/>); null starts at step 0.</param>
internal sealed record CheckpointPolicy(string Folder, int Interval, int Keep = 2, CheckpointFile? ResumeFrom = null);

/// <summary>
/// Everything a run needs to continue bit for bit after a kill: the step, the batch sampler's position,
/// the last evaluation, libtorch's RNG state (dropout), the optimiser's state (moments, step, fp32
/// master weights in bf16 training), the model's parameters and buffers, and the task's own running
/// state (a classifier's curve). One file per checkpoint, checkpoint-STEP.bin; the newest few are kept,
/// so a damaged newest one leaves an older one to resume from.
/// </summary>
/// <remarks>
/// File layout (format 5): the magic string, the format, the file's length in bytes (int64), then the
/// run id, the step and the state, then the SHA-256 of everything after the length field. A file verifies
/// when all of these match: a truncated, extended, overwritten or bit-flipped file does not. Each is
/// written atomically (<see cref="AtomicFile"/>): a kill mid-write leaves a temporary file, never a
/// partial checkpoint under a checkpoint's name.
/// </remarks>
internal static class TrainingCheckpoint
{
    const string Magic = "RESLAB-CHECKPOINT";
    const int Version = 6; // 6: a classifier's curve holds its validation error (5: length and SHA-256, one file per step; 4: checkpoint.bin, no checksum)
    const int HashBytes = 32;
    static readonly Regex FileName = new(@"^checkpoint-(\d{1,9})\.bin$", RegexOptions.CultureInvariant);
    static readonly Regex TempName = new(@"^checkpoint-\d{1,9}\.bin\.tmp$", RegexOptions.CultureInvariant);

    public static string PathFor(string folder, int step) => Path.Combine(folder, $"checkpoint-{step:D8}.bin");

    /// <summary>The checkpoints of a folder, newest first (by the step in their names); none when the folder does not exist.</summary>
    public static IReadOnlyList<CheckpointFile> List(string folder) =>
        StorageException.Guard("listing the checkpoints in", folder, () => Directory.Exists(folder)
            ? Directory.EnumerateFiles(folder).Select(path => (path, match: FileName.Match(Path.GetFileName(path))))
                .Where(f => f.match.Success)
                .Select(f => new CheckpointFile(f.path, int.Parse(f.match.Groups[1].Value, CultureInfo.InvariantCulture)))
                .OrderByDescending(c => c.Step).ToList()
            : []);

    /// <summary>Writes the checkpoint of <paramref name="step"/>, then deletes all but the newest <paramref name="keep"/> up to it and any temporary file a kill left.</summary>
    public static void Save(string folder, ITrainingTask task, string runId, int step, EvalMetrics? lastEval, int keep)
    {
        AtomicFile.Write(PathFor(folder, step), file =>
        {
            using (var header = new BinaryWriter(file, Encoding.UTF8, leaveOpen: true))
            {
                header.Write(Magic);
                header.Write(Version);
                header.Write(0L); // the length, written once known
            }
            long hashedFrom = file.Position;
            using var sha = SHA256.Create();
            using (var hashing = new CryptoStream(file, sha, CryptoStreamMode.Write, leaveOpen: true))
            using (var w = new BinaryWriter(hashing, Encoding.UTF8, leaveOpen: true))
                WriteState(w, task, runId, step, lastEval);
            file.Write(sha.Hash);
            long length = file.Position;
            file.Position = hashedFrom - sizeof(long);
            using var lengthField = new BinaryWriter(file, Encoding.UTF8, leaveOpen: true);
            lengthField.Write(length);
        });
        // Checkpoints past this step are from before a resume that skipped them (they did not verify):
        // they are left until this run overwrites them, and the ones kept are the newest up to here.
        foreach (var old in List(folder).Where(c => c.Step <= step).Skip(keep)) StorageException.Guard("deleting the old checkpoint", old.Path, () => File.Delete(old.Path));
        DeleteTemporary(folder);
    }

    static void WriteState(BinaryWriter w, ITrainingTask task, string runId, int step, EvalMetrics? lastEval)
    {
        w.Write(runId);
        w.Write(step);
        task.Batches.Write(w);
        w.Write(lastEval is not null);
        if (lastEval is not null)
        {
            w.Write(lastEval.Step);
            w.Write(lastEval.TrainLoss);
            w.Write(lastEval.ValLoss);
            w.Write(lastEval.TestLoss);
        }
        using (var rng = get_rng_state()) rng.Save(w);
        task.Optimizer.Save(w);
        var state = task.Model.state_dict();
        w.Write(state.Count);
        foreach (var (name, tensor) in state)
        {
            w.Write(name);
            tensor.Save(w);
        }
        task.SaveState(w);
    }

    /// <summary>Deletes every checkpoint of a folder (a finished run keeps none) and any temporary file a kill left.</summary>
    public static void DeleteAll(string folder)
    {
        foreach (var c in List(folder)) StorageException.Guard("deleting the checkpoint", c.Path, () => File.Delete(c.Path));
        DeleteTemporary(folder);
    }

    static void DeleteTemporary(string folder)
    {
        if (!Directory.Exists(folder)) return;
        foreach (var tmp in Directory.EnumerateFiles(folder).Where(path => TempName.IsMatch(Path.GetFileName(path))).ToList())
            StorageException.Guard("deleting the unfinished checkpoint", tmp, () => File.Delete(tmp));
    }

    /// <summary>
    /// The newest checkpoint of <paramref name="folder"/> that verifies, or null when there is none. Each
    /// newer one that does not verify is told to <paramref name="skipped"/> in one line, with why; when
    /// checkpoints exist and none verifies, a <see cref="ConfigException"/> says so and what to do.
    /// </summary>
    public static CheckpointFile? Latest(string folder, string runId, Action<string>? skipped = null)
    {
        var all = List(folder);
        var problems = new List<string>();
        foreach (var checkpoint in all)
        {
            if (Problem(checkpoint, runId) is not { } problem)
            {
                foreach (var p in problems) skipped?.Invoke($"{p}: skipped, resuming from the older {Path.GetFileName(checkpoint.Path)}");
                return checkpoint;
            }
            problems.Add($"{Path.GetFileName(checkpoint.Path)} {problem}");
        }
        if (all.Count == 0) return null;
        throw new ConfigException(
            $"run {runId} cannot resume: none of its {all.Count} checkpoint(s) in {folder} verifies ({string.Join("; ", problems)}); "
            + $"restore one from a backup, or delete them (rm {Path.Combine(folder, "checkpoint-*.bin")}) to train the run again from step 0");
    }

    /// <summary>Why a checkpoint cannot be used (completing "checkpoint-N.bin ..."), or null when it verifies.</summary>
    static string? Problem(CheckpointFile checkpoint, string runId)
    {
        try
        {
            using var file = File.OpenRead(checkpoint.Path);
            using var r = new BinaryReader(file, Encoding.UTF8, leaveOpen: true);
            long actual = file.Length;
            if (actual == 0) return "is empty";
            if (!HasMagic(r)) return "is not a ResidualLab checkpoint";
            int version = r.ReadInt32();
            if (version != Version) return $"has format {version}, this ResidualLab reads format {Version}";
            long expected = r.ReadInt64();
            long hashedFrom = file.Position;
            if (expected < hashedFrom + HashBytes) return "has a damaged header";
            if (actual < expected) return $"is truncated ({actual:N0} of {expected:N0} bytes)";
            if (actual > expected) return $"has {actual - expected:N0} bytes beyond its end";
            using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            var buffer = new byte[1 << 20];
            for (long left = expected - HashBytes - hashedFrom; left > 0;)
            {
                int n = file.Read(buffer, 0, (int)Math.Min(buffer.Length, left));
                if (n == 0) return "is truncated";
                sha.AppendData(buffer, 0, n);
                left -= n;
            }
            if (!sha.GetHashAndReset().AsSpan().SequenceEqual(r.ReadBytes(HashBytes)))
                return "does not match its SHA-256 (its bytes changed after it was written)";
            file.Position = hashedFrom;
            string id = r.ReadString();
            if (id != runId) return $"belongs to run {id}";
            int step = r.ReadInt32();
            return step == checkpoint.Step ? null : $"holds step {step}, not the step its name says";
        }
        catch (EndOfStreamException) { return "is truncated (within its header)"; }
        catch (Exception e) when (StorageException.FaultOf(e) is not null) { return $"cannot be read ({e.Message})"; }
    }

    static bool HasMagic(BinaryReader r)
    {
        try { return r.ReadString() == Magic; }
        catch (Exception e) when (e is EndOfStreamException or FormatException) { return false; }
    }

    /// <summary>Restores a task from a checkpoint that verified (<see cref="Latest"/>); returns the last evaluation.</summary>
    public static EvalMetrics? Load(CheckpointFile checkpoint, ITrainingTask task)
    {
        using var file = File.OpenRead(checkpoint.Path);
        using var r = new BinaryReader(file, Encoding.UTF8);
        try
        {
            r.ReadString(); // magic, format, length, run id and step: checked by Latest
            r.ReadInt32();
            r.ReadInt64();
            r.ReadString();
            r.ReadInt32();
            task.Batches.Read(r);
            EvalMetrics? last = r.ReadBoolean() ? new EvalMetrics(r.ReadInt32(), r.ReadDouble(), r.ReadDouble(), r.ReadDouble()) : null;
            using (var rng = TorchSharp.TensorExtensionMethods.Load(r)) set_rng_state(rng);
            task.Optimizer.Load(r);
            LoadInPlace(r, task.Model.state_dict());
            task.LoadState(r);
            if (file.Length - file.Position != HashBytes) throw new InvalidDataException($"{file.Length - file.Position - HashBytes} bytes left unread");
            return last;
        }
        catch (Exception ex) when (ex is EndOfStreamException or ArgumentException or InvalidDataException)
        {
            throw new ConfigException($"checkpoint '{checkpoint.Path}' verifies but does not match the model ({ex.Message}); delete it to resume from an older one or start the run again");
        }
    }

    /// <summary>
    /// Reads the model's parameters and buffers into the tensors it has. Module.load would move a CUDA
    /// model to the CPU and back, which replaces its parameters and cuts them off AdamW's flat buffers.
    /// </summary>
    static void LoadInPlace(BinaryReader r, Dictionary<string, Tensor> state)
    {
        int count = r.ReadInt32();
        if (count != state.Count)
            throw new ArgumentException($"{count} parameters and buffers saved, the model has {state.Count}");
        for (int i = 0; i < count; i++)
        {
            string name = r.ReadString();
            if (!state.TryGetValue(name, out var tensor)) throw new ArgumentException($"the model has no '{name}'");
            tensor.Load(r);
        }
    }
}
