using System.Diagnostics;
using ResidualLab.Connections;
using ResidualLab.Data;
using ResidualLab.Diagnostics;
using ResidualLab.Experiments;
using ResidualLab.Models;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace ResidualLab.Training;

/// <summary>
/// Trains one GPT run: AdamW with decay on matrices only (train.decay = all: on every parameter), warmup + cosine schedule, gradient
/// clipping, evaluation on fixed batches every eval_interval steps and at the end. With train.dtype =
/// bfloat16 the model's matrix multiplies run on bf16 weights and AdamW keeps fp32 masters. On CPU
/// the same config gives the same loss sequence bit for bit.
/// </summary>
public sealed class Trainer
{
    /// <summary>Seed of the fixed evaluation batches: the same for every run, so runs compare on the same text.</summary>
    public const ulong EvalSeed = 0x5EED_E7A1;

    readonly RunConfig _config;
    readonly TokenCorpus _corpus;
    readonly Device _device;

    public Gpt Model { get; }
    public AdamW Optimizer { get; }
    public LrSchedule Schedule { get; }
    public TokenBatcher TrainBatches { get; }

    public Trainer(RunConfig config, TokenCorpus corpus, Device device)
    {
        _config = config;
        _corpus = corpus;
        _device = device;
        if (corpus.Train.Length <= config.Model.BlockSize + 1 || corpus.Val.Length <= config.Model.BlockSize + 1)
            throw new ConfigException($"corpus '{corpus.Source}' is too short for block_size {config.Model.BlockSize}");

        manual_seed(config.Train.Seed);
        Model = new Gpt(config.Model with { VocabSize = corpus.VocabSize }, config.Connection);
        Model.to(device);
        if (config.Train.Dtype == TrainDtype.BFloat16) Model.CastMatmulWeights(ScalarType.BFloat16);

        var noDecay = new HashSet<IntPtr>(Model.modules().OfType<Connection>()
            .SelectMany(c => c.NoDecayParameters()).Select(p => p.Handle));
        var groups = Model.parameters().Select(p => (p, config.Train.Decay == DecayGroups.All || (p.dim() >= 2 && !noDecay.Contains(p.Handle))));
        var t = config.Train;
        Optimizer = new AdamW(groups, t.Beta1, t.Beta2, t.WeightDecay);
        Schedule = new LrSchedule(t.Lr, t.MinLr, t.WarmupIters, t.MaxIters);
        TrainBatches = new TokenBatcher(corpus.Train, t.BatchSize, config.Model.BlockSize, (ulong)t.Seed);
    }

    /// <summary>Mean loss over the fixed evaluation batches of each split (test: NaN without a test split).</summary>
    public EvalMetrics Evaluate(int step)
    {
        Model.eval();
        var t = _config.Train;
        var metrics = new EvalMetrics(step,
            FixedBatchLoss(Model, _corpus.Train, t.BatchSize, t.EvalBatches, _device),
            FixedBatchLoss(Model, _corpus.Val, t.BatchSize, t.EvalBatches, _device),
            _corpus.Test.Length > 0 ? FixedBatchLoss(Model, _corpus.Test, t.BatchSize, t.EvalBatches, _device) : double.NaN);
        Model.train();
        return metrics;
    }

    /// <summary>
    /// Mean loss of <paramref name="model"/> (in the mode it is in) over the first <paramref name="batches"/>
    /// batches of <paramref name="tokens"/> drawn with <see cref="EvalSeed"/>: the same windows for every run.
    /// </summary>
    public static double FixedBatchLoss(Gpt model, TokenSequence tokens, int batchSize, int batches, Device device)
    {
        var batcher = new TokenBatcher(tokens, batchSize, model.Config.BlockSize, EvalSeed);
        double sum = 0;
        for (int i = 0; i < batches; i++)
        {
            using var scope = NewDisposeScope();
            using var _ = no_grad();
            var (x, y) = batcher.Next(device);
            sum += model.Loss(x, y).item<float>();
        }
        return sum / batches;
    }

    /// <summary>
    /// One optimiser step on the next training batch: forward, backward, clipping, update. The update is
    /// skipped when the loss or the gradient norm is not finite (the caller marks the run diverged).
    /// </summary>
    /// <param name="afterBackward">Called with the raw gradients in place, before clipping (probes).</param>
    public (double Loss, double GradNorm) Step(double lr, Action? afterBackward = null) =>
        Step(TrainBatches.NextBatch(), lr, afterBackward);

    (double Loss, double GradNorm) Step(TokenBatch batch, double lr, Action? afterBackward)
    {
        double loss, gradNorm;
        using (var scope = NewDisposeScope())
        {
            var (x, y) = batch.ToTensors(_device);
            var lossTensor = Model.Loss(x, y);
            Optimizer.ZeroGrad();
            lossTensor.backward();
            Optimizer.CollectGradients();
            afterBackward?.Invoke();
            double clip = _config.Train.GradClip;
            gradNorm = clip > 0 ? Optimizer.ClipGradNorm(clip) : Optimizer.GradNorm();
            loss = lossTensor.item<float>();
            if (double.IsFinite(loss) && double.IsFinite(gradNorm)) Optimizer.Update(lr);
        }
        // TorchSharp leaves finalizable native objects behind every step; collecting now keeps
        // native memory flat (measured: about 1 ms per step).
        GC.Collect();
        GC.WaitForPendingFinalizers();
        return (loss, gradNorm);
    }

    /// <summary>
    /// Writes the model in TorchSharp's module format (as <c>Module.save</c>) with fp32 weights: in bf16
    /// training, the optimiser's master weights stand in for the model's bf16 copies, so the file loads
    /// into a freshly built (fp32) <see cref="Gpt"/>.
    /// </summary>
    public void SaveModel(string path)
    {
        using var scope = NewDisposeScope();
        var masters = Optimizer.MasterViews().ToDictionary(m => m.Param.Handle, m => m.Master);
        var state = Model.state_dict().ToDictionary(kv => kv.Key, kv => masters.GetValueOrDefault(kv.Value.Handle, kv.Value));
        using var writer = new BinaryWriter(File.Create(path));
        nn.Module.save_state_dict(writer, state);
    }

    /// <summary>Trains to train.max_iters; with a checkpoint policy, writes checkpoints and can resume from one.</summary>
    public TrainResult Run(ITrainingObserver? observer = null, CancellationToken cancel = default, CheckpointPolicy? checkpoints = null)
    {
        var t = _config.Train;
        long tokensPerStep = (long)t.BatchSize * _config.Model.BlockSize;
        var wall = Stopwatch.StartNew();
        double stepMsSum = 0;
        EvalMetrics? last = null;
        int start = 0;
        if (checkpoints is { Resume: true } && File.Exists(checkpoints.Path))
            (start, last) = TrainingCheckpoint.Load(checkpoints.Path, this, _config.RunId);
        var gradientProbe = new GradientNormProbe(Model.Blocks.ToList<nn.Module>(), t.ProbeInterval);
        var streamProbe = new StreamProbe(Model, t.ProbeInterval);
        // The next batch is drawn on a background thread while a step runs, by a copy of the sampler;
        // TrainBatches follows the batches used, so a checkpoint records where the next one starts.
        using var upcoming = new BatchPrefetcher<TokenBatch>(TrainBatches.Copy().NextBatch);
        observer?.OnStart(t.MaxIters);
        Model.train();

        TrainResult Finish(RunStatus status, int steps, string? note = null)
        {
            int run = steps - start;
            var result = new TrainResult(status, steps, last, Model.ParameterCount(), wall.Elapsed.TotalSeconds,
                run > 0 ? stepMsSum / run : 0, ProcessMemory.PeakRssBytes(), note);
            observer?.OnEnd(result);
            return result;
        }

        for (int step = start; step < t.MaxIters; step++)
        {
            if (cancel.IsCancellationRequested) return Finish(RunStatus.Cancelled, step);
            if (step > 0 && step % t.EvalInterval == 0)
            {
                last = Evaluate(step);
                observer?.OnEval(last);
            }

            var sw = Stopwatch.StartNew();
            double lr = Schedule.At(step);
            bool probe = gradientProbe.IsDue(step);
            if (probe) streamProbe.Arm();
            var batch = upcoming.Take();
            TrainBatches.State = batch.StateAfter;
            var (loss, gradNorm) = Step(batch, lr, probe
                ? () => { foreach (var reading in gradientProbe.Measure(step).Concat(streamProbe.Measure(step))) observer?.OnDiagnostic(reading); }
                : null);
            if (!double.IsFinite(loss) || !double.IsFinite(gradNorm))
                return Finish(RunStatus.Diverged, step, $"non-finite {(double.IsFinite(loss) ? "gradient norm" : "loss")} at step {step}");
            sw.Stop();
            stepMsSum += sw.Elapsed.TotalMilliseconds;
            observer?.OnStep(new StepMetrics(step, loss, lr, gradNorm, sw.Elapsed.TotalMilliseconds,
                tokensPerStep / sw.Elapsed.TotalSeconds));
            if (checkpoints is { Interval: > 0 } && (step + 1) % checkpoints.Interval == 0 && step + 1 < t.MaxIters)
                TrainingCheckpoint.Save(checkpoints.Path, this, _config.RunId, step + 1, last);
        }
        last = Evaluate(t.MaxIters);
        observer?.OnEval(last);
        return Finish(RunStatus.Done, t.MaxIters);
    }
}
