using System.Diagnostics;
using ResidualLab.Config;
using ResidualLab.Data;
using static TorchSharp.torch;

namespace ResidualLab.Training;

/// <summary>
/// The training loop of every model family: for each step, the learning rate from the task's schedule,
/// a batch made ahead on a background thread, forward, backward, probes, gradient clipping and the
/// update, skipped and the run marked diverged when the loss or the gradient norm is not finite; probes at step 0
/// (the initialisation), every train.probe_interval steps and on the last step (the trained model);
/// evaluation every eval_interval steps and at the end; a resumable checkpoint every
/// checkpoint_interval steps, the newest keep_checkpoints of them kept. On CPU the same config gives the same loss sequence bit for bit, with or
/// without a kill and resume in between.
/// </summary>
internal sealed class Trainer(ITrainingTask task, RunConfig config)
{
    /// <summary>
    /// One optimiser step on the next training batch, drawn here (no prefetch). The update is skipped
    /// when the loss or the gradient norm is not finite.
    /// </summary>
    public (double Loss, double GradNorm) Step(double lr) => Step(task.Batches.NextBatch(), lr, null);

    (double Loss, double GradNorm) Step(IBatch batch, double lr, Action? probe)
    {
        double loss, gradNorm;
        var optimizer = task.Optimizer;
        using (var scope = NewDisposeScope())
        {
            var lossTensor = task.Loss(batch);
            optimizer.ZeroGrad();
            lossTensor.backward();
            optimizer.CollectGradients();
            task.AfterBackward();
            probe?.Invoke();
            double clip = config.Train.GradClip;
            gradNorm = clip > 0 ? GradientClipping.Clip(optimizer.Gradients, clip) : GradientClipping.Norm(optimizer.Gradients);
            loss = lossTensor.item<float>();
            if (double.IsFinite(loss) && double.IsFinite(gradNorm))
            {
                optimizer.Update(lr);
                task.AfterStep(loss);
            }
        }
        // TorchSharp leaves finalizable native objects behind every step; collecting now keeps
        // native memory flat (measured: about 1 ms per step).
        GC.Collect();
        GC.WaitForPendingFinalizers();
        return (loss, gradNorm);
    }

    /// <summary>Trains to train.max_iters; with a checkpoint policy, writes checkpoints and continues from the one it names.</summary>
    public TrainResult Run(ITrainingObserver? observer = null, CancellationToken cancel = default, CheckpointPolicy? checkpoints = null)
    {
        var t = config.Train;
        var (perBatch, unit) = task.BatchSize;
        var wall = Stopwatch.StartNew();
        double stepMsSum = 0;
        EvalMetrics? last = null;
        int start = 0;
        if (checkpoints?.ResumeFrom is { } from)
            (start, last) = (from.Step, TrainingCheckpoint.Load(from, task));
        else
        {
            task.OnStart();
            foreach (var reading in task.StartReadings()) observer?.OnDiagnostic(reading);
        }
        // The next batch is drawn on a background thread while a step runs, by a copy of the sampler;
        // the task's sampler follows the batches used, so a checkpoint records where the next one starts.
        using var upcoming = new BatchPrefetcher<IBatch>(task.Batches.Copy().NextBatch);
        observer?.OnStart(t.MaxIters);
        task.Model.train();

        TrainResult Finish(RunStatus status, int steps, string? note = null)
        {
            int run = steps - start;
            var result = new TrainResult(status, steps, last, task.Model.parameters().Sum(p => p.numel()), wall.Elapsed.TotalSeconds,
                run > 0 ? stepMsSum / run : 0, ProcessMemory.PeakRssBytes(), note);
            foreach (var reading in task.EndReadings(steps)) observer?.OnDiagnostic(reading);
            observer?.OnEnd(result);
            return result;
        }

        for (int step = start; step < t.MaxIters; step++)
        {
            if (cancel.IsCancellationRequested) return Finish(RunStatus.Cancelled, step);
            if (step > 0 && step % t.EvalInterval == 0) last = Evaluate(step);

            var sw = Stopwatch.StartNew();
            double lr = task.Schedule.At(step);
            bool probe = t.ProbeInterval > 0 && (step % t.ProbeInterval == 0 || step == t.MaxIters - 1); // at init, every interval, and the trained model
            if (probe) task.ArmProbes();
            var batch = upcoming.Take();
            task.Batches.MoveAfter(batch);
            var (loss, gradNorm) = Step(batch, lr, probe
                ? () => { foreach (var reading in task.ReadProbes(step)) observer?.OnDiagnostic(reading); }
            : null);
            sw.Stop();
            // The diverging step is recorded too (its loss and gradient norm say how it diverged); it
            // made no update and stays out of the averages.
            observer?.OnStep(new StepMetrics(step, loss, lr, gradNorm, sw.Elapsed.TotalMilliseconds, perBatch / sw.Elapsed.TotalSeconds, unit));
            if (!double.IsFinite(loss) || !double.IsFinite(gradNorm))
                return Finish(RunStatus.Diverged, step, $"non-finite {(double.IsFinite(loss) ? "gradient norm" : "loss")} at step {step}");
            stepMsSum += sw.Elapsed.TotalMilliseconds;
            if (checkpoints is { Interval: > 0 } && (step + 1) % checkpoints.Interval == 0 && step + 1 < t.MaxIters)
            {
                observer?.OnCheckpoint(step + 1);
                TrainingCheckpoint.Save(checkpoints.Folder, task, config.RunId, step + 1, last, checkpoints.Keep);
            }
        }
        last = Evaluate(t.MaxIters);
        return Finish(RunStatus.Done, t.MaxIters);

        EvalMetrics Evaluate(int step)
        {
            var eval = task.Evaluate(step);
            observer?.OnEval(eval);
            foreach (var reading in task.EvalReadings(step)) observer?.OnDiagnostic(reading);
            return eval;
        }
    }
}
