using System.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace ResidualLab.Training;

/// <summary>Where and how often a run writes its resumable checkpoint.</summary>
/// <param name="Interval">Steps between checkpoints; 0 writes none during training.</param>
internal sealed record CheckpointPolicy(string Path, int Interval, bool Resume);

/// <summary>
/// Everything a run needs to continue bit for bit after a kill: the step, the batch sampler's position,
/// the last evaluation, libtorch's RNG state (dropout), the optimiser's state (moments, step, fp32
/// master weights in bf16 training), the model's parameters and buffers, and the task's own running
/// state (a classifier's curve). Written atomically: a temporary file, flushed to disk, then renamed
/// over the previous checkpoint.
/// </summary>
internal static class TrainingCheckpoint
{
    const string Magic = "RESLAB-CHECKPOINT";
    const int Version = 4;

    public static void Save(string path, ITrainingTask task, string runId, int step, EvalMetrics? lastEval)
    {
        string tmp = path + ".tmp";
        using (var file = new FileStream(tmp, FileMode.Create, FileAccess.Write, FileShare.None))
        {
            using (var w = new BinaryWriter(file, Encoding.UTF8, leaveOpen: true))
            {
                w.Write(Magic);
                w.Write(Version);
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
            file.Flush(flushToDisk: true);
        }
        File.Move(tmp, path, overwrite: true);
    }

    /// <summary>The step a checkpoint resumes at, or null when there is none.</summary>
    public static int? PeekStep(string path, string runId)
    {
        if (!File.Exists(path)) return null;
        using var r = Open(path, runId, out int step);
        return step;
    }

    /// <summary>Restores a task; returns the step to continue from and the last evaluation.</summary>
    public static (int Step, EvalMetrics? LastEval) Load(string path, ITrainingTask task, string runId)
    {
        using var r = Open(path, runId, out int step);
        try
        {
            task.Batches.Read(r);
            EvalMetrics? last = r.ReadBoolean() ? new EvalMetrics(r.ReadInt32(), r.ReadDouble(), r.ReadDouble(), r.ReadDouble()) : null;
            using (var rng = TorchSharp.TensorExtensionMethods.Load(r)) set_rng_state(rng);
            task.Optimizer.Load(r);
            LoadInPlace(r, task.Model.state_dict());
            task.LoadState(r);
            return (step, last);
        }
        catch (Exception ex) when (ex is EndOfStreamException or ArgumentException or IOException or InvalidDataException)
        {
            throw new InvalidDataException($"checkpoint '{path}' is truncated or does not match the model ({ex.Message}); delete it to start the run again");
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

    static BinaryReader Open(string path, string runId, out int step)
    {
        var r = new BinaryReader(File.OpenRead(path), Encoding.UTF8);
        try
        {
            if (r.ReadString() != Magic) throw new InvalidDataException($"'{path}' is not a ResidualLab checkpoint");
            int version = r.ReadInt32();
            if (version != Version)
                throw new InvalidDataException($"checkpoint '{path}' has format {version}, this ResidualLab reads format {Version}; delete it to start the run again");
            string id = r.ReadString();
            if (id != runId)
                throw new InvalidDataException($"checkpoint '{path}' belongs to run {id}, not {runId}");
            step = r.ReadInt32();
            return r;
        }
        catch (EndOfStreamException)
        {
            r.Dispose();
            throw new InvalidDataException($"checkpoint '{path}' is truncated; delete it to start the run again");
        }
        catch
        {
            r.Dispose();
            throw;
        }
    }
}
