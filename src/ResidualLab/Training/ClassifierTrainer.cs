using TorchSharp;
using System.Diagnostics;
using ResidualLab.Connections;
using ResidualLab.Data;
using ResidualLab.Diagnostics;
using ResidualLab.Experiments;
using ResidualLab.Models;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace ResidualLab.Training;

/// <summary>One evaluation of a classifier: losses and error rates (fractions) on the splits, and the
/// mini-batch loss, error and first-to-last gradient-norm ratio averaged over the steps since the last one.</summary>
public sealed record ClassifierEval(
    int Step, int Epoch, double TrainLoss, double TrainError, double TestLoss, double TestError,
    double BatchLoss, double BatchError, double GradRatio)
{
    /// <summary>Loss on the validation images (the end of the published training split): for selection.</summary>
    public double ValLoss { get; init; } = double.NaN;
}

/// <summary>One training step of a classifier: the mini-batch loss and error (a fraction), the global
/// gradient norm, and the gradient norm of every weight layer, all before the update.</summary>
public sealed record ClassifierStep(double Loss, double Error, double GradNorm, GradientNorms LayerNorms)
{
    public bool Finite => double.IsFinite(Loss) && double.IsFinite(GradNorm);
}

/// <summary>A classifier run: the shared result, the curve of evaluations, and the gradient norms per
/// layer at initialisation and averaged over all training steps.</summary>
public sealed record ClassifierResult(
    TrainResult Run, IReadOnlyList<ClassifierEval> Curve, GradientNorms AtInit, GradientNorms DuringTraining)
{
    public ClassifierEval? Final => Curve.Count > 0 ? Curve[^1] : null;
}

/// <summary>
/// Trains one image classifier as He et al. 2016 (sec. 4.2) train their CIFAR nets: SGD with momentum
/// 0.9 and weight decay (here on weights only, not on batch-norm scales and biases), mini-batches
/// reshuffled every epoch, the learning rate divided by 10 at 50% and 75% of the steps, no dropout.
/// Every eval_interval steps it measures loss and error on the first eval_batches x batch_size
/// training images, on the validation images (the last data.val_images of the published training split,
/// never trained on) and on the whole test split (evaluation mode, no augmentation). The gradient norm
/// of every weight layer is read at initialisation (one fixed batch, before any update) and at every
/// training step.
/// </summary>
public sealed class ClassifierTrainer
{
    readonly RunConfig _config;
    readonly VisionSettings _vision;
    readonly ImageSet _data;
    readonly ImageSplit _train;
    readonly ImageSplit _val;
    readonly Device _device;

    public ImageClassifier Model { get; }
    public Sgd Optimizer { get; }
    public StepSchedule Schedule { get; }
    public ImageBatcher Batches { get; }

    public ClassifierTrainer(RunConfig config, ImageSet data, Device device)
    {
        _vision = config.Vision ?? throw new ArgumentException($"'{config.ModelName}' is not a vision model");
        _config = config;
        _data = data;
        _device = device;
        int trainable = data.Train.Count - _vision.ValImages;
        if (trainable < 1)
            throw new ConfigException($"data.val_images ({_vision.ValImages}) leaves none of {data.Name}'s {data.Train.Count} training images to train on; hold out fewer");
        int n = _vision.TrainImages == 0 ? trainable : Math.Min(_vision.TrainImages, trainable);
        _train = new ImageSplit(data.Train.Pixels.narrow(0, 0, n), data.Train.Labels.narrow(0, 0, n));
        _val = new ImageSplit(data.Train.Pixels.narrow(0, trainable, _vision.ValImages), data.Train.Labels.narrow(0, trainable, _vision.ValImages));
        if (data.Height != data.Width) throw new InvalidDataException($"{data.Name}: images must be square, got {data.Height}x{data.Width}");

        manual_seed(config.Train.Seed);
        var model = _vision.Model with { InChannels = data.Channels, ImageSize = data.Height, Classes = data.Classes };
        Model = model.Build(config.Connection);
        Model.to(device);

        var noDecay = new HashSet<IntPtr>(Model.modules().OfType<Connection>()
            .SelectMany(c => c.NoDecayParameters()).Select(p => p.Handle));
        var t = config.Train;
        Optimizer = new Sgd(Model.parameters().Select(p => (p, t.Decay == DecayGroups.All || (p.dim() >= 2 && !noDecay.Contains(p.Handle)))), _vision.Momentum, t.WeightDecay);
        Schedule = new StepSchedule(t.Lr, t.WarmupIters, t.MaxIters);
        Batches = new ImageBatcher(data, _train, t.BatchSize, (ulong)t.Seed, _vision.Augment ? 4 : 0);
    }

    public int TrainImages => _train.Count;

    /// <summary>Loss and error on the first eval_batches x batch_size training images, the validation images and the test split.</summary>
    public (double TrainLoss, double TrainError, double ValLoss, double TestLoss, double TestError) Evaluate()
    {
        Model.eval();
        (double Loss, double Error) Measure(ImageSplit split, int limit)
        {
            double loss = 0, wrong = 0;
            int count = 0;
            foreach (var (x, y) in ImageBatcher.InOrder(_data, split, _config.Train.BatchSize, limit, _device))
            {
                using var scope = NewDisposeScope();
                using var _ = no_grad();
                var logits = Model.call(x);
                loss += F.cross_entropy(logits, y, reduction: nn.Reduction.Sum).item<float>();
                wrong += logits.argmax(1).ne(y).sum().item<long>();
                count += (int)y.shape[0];
            }
            return (loss / count, wrong / count);
        }
        var train = Measure(_train, _config.Train.EvalBatches * _config.Train.BatchSize);
        var val = Measure(_val, int.MaxValue);
        var test = Measure(_data.Test, int.MaxValue);
        Model.train();
        return (train.Loss, train.Error, val.Loss, test.Loss, test.Error);
    }

    /// <summary>
    /// Gradient norms per weight layer on the first training batch, without changing the model: the
    /// gradients are zeroed again and the batch norms' running statistics restored afterwards.
    /// </summary>
    public GradientNorms ProbeGradients()
    {
        Model.train();
        var saved = Model.buffers().Select(b => b.clone().DetachFromDisposeScope()).ToList();
        try
        {
            using var scope = NewDisposeScope();
            var (x, y) = ImageBatcher.InOrder(_data, _train, _config.Train.BatchSize, _config.Train.BatchSize, _device).First();
            Optimizer.ZeroGrad();
            Model.Loss(x, y).backward();
            var norms = GradientNorms.Read(Model);
            Optimizer.ZeroGrad();
            return norms;
        }
        finally
        {
            using (no_grad())
                foreach (var (b, copy) in Model.buffers().Zip(saved)) b.copy_(copy);
            foreach (var copy in saved) copy.Dispose();
        }
    }

    /// <summary>
    /// One optimiser step on the next training batch: forward, backward, the gradient norms of every
    /// weight layer and of all parameters, then the update at <paramref name="lr"/>, skipped when the loss
    /// or the gradient norm is not finite (the caller marks the run diverged).
    /// </summary>
    public ClassifierStep Step(double lr) => Step(lr, Batches.NextBatch());

    /// <summary>The same step on a given batch (the training loop's, prepared on a background thread).</summary>
    public ClassifierStep Step(double lr, ImageBatch batch)
    {
        ClassifierStep result;
        using (var scope = NewDisposeScope())
        {
            var (x, y) = batch.ToTensors(_device);
            var logits = Model.call(x);
            var lossTensor = F.cross_entropy(logits, y);
            Optimizer.ZeroGrad();
            lossTensor.backward();
            var layerNorms = GradientNorms.Read(Model);
            double clip = _config.Train.GradClip;
            double gradNorm = clip > 0 ? nn.utils.clip_grad_norm_(Optimizer.Parameters, clip) : Optimizer.GradNorm();
            double error = logits.argmax(1).ne(y).to_type(ScalarType.Float32).mean().item<float>();
            result = new ClassifierStep(lossTensor.item<float>(), error, gradNorm, layerNorms);
            if (result.Finite) Optimizer.Update(lr);
        }
        // As in the GPT trainer: collecting now frees TorchSharp's finalizable native objects every step.
        GC.Collect();
        GC.WaitForPendingFinalizers();
        return result;
    }

    public ClassifierResult Run(ITrainingObserver? observer = null, CancellationToken cancel = default)
    {
        var t = _config.Train;
        var wall = Stopwatch.StartNew();
        var curve = new List<ClassifierEval>();
        var normSums = new double[Model.WeightLayers.Count];
        int normSteps = 0;
        double stepMsSum = 0, lossSum = 0, errorSum = 0, ratioSum = 0;
        int since = 0;
        observer?.OnStart(t.MaxIters);

        // The next batch is made on a background thread while a step runs.
        using var upcoming = new BatchPrefetcher<ImageBatch>(Batches.NextBatch);
        int epoch = 0;
        var atInit = ProbeGradients();

        ClassifierResult Finish(RunStatus status, int steps, string? note = null)
        {
            var last = curve.Count > 0 ? new EvalMetrics(curve[^1].Step, curve[^1].TrainLoss, curve[^1].ValLoss, curve[^1].TestLoss) : null;
            var run = new TrainResult(status, steps, last, Model.ParameterCount(), wall.Elapsed.TotalSeconds,
                steps > 0 ? stepMsSum / steps : 0, ProcessMemory.PeakRssBytes(), note);
            observer?.OnEnd(run);
            var during = normSteps == 0 ? atInit : atInit with { Norms = normSums.Select(x => x / normSteps).ToList() };
            return new ClassifierResult(run, curve, atInit, during);
        }

        void Eval(int step)
        {
            var (trainLoss, trainError, valLoss, testLoss, testError) = Evaluate();
            int n = Math.Max(1, since);
            var e = new ClassifierEval(step, epoch, trainLoss, trainError, testLoss, testError, lossSum / n, errorSum / n, ratioSum / n) { ValLoss = valLoss };
            curve.Add(e);
            observer?.OnEval(new EvalMetrics(step, trainLoss, valLoss, testLoss));
            lossSum = errorSum = ratioSum = 0;
            since = 0;
        }

        for (int step = 0; step < t.MaxIters; step++)
        {
            if (cancel.IsCancellationRequested) return Finish(RunStatus.Cancelled, step);
            if (step > 0 && step % t.EvalInterval == 0) Eval(step);

            var sw = Stopwatch.StartNew();
            double lr = Schedule.At(step);
            var batch = upcoming.Take();
            epoch = batch.Epoch;
            var measured = Step(lr, batch);
            sw.Stop();
            // The diverging step is recorded too (its loss and gradient norm say how it diverged); it
            // made no update and stays out of the averages.
            observer?.OnStep(new StepMetrics(step, measured.Loss, lr, measured.GradNorm, sw.Elapsed.TotalMilliseconds, t.BatchSize / sw.Elapsed.TotalSeconds));
            if (!measured.Finite)
                return Finish(RunStatus.Diverged, step, $"non-finite {(double.IsFinite(measured.Loss) ? "gradient norm" : "loss")} at step {step}");
            for (int i = 0; i < normSums.Length; i++) normSums[i] += measured.LayerNorms.Norms[i];
            normSteps++;
            lossSum += measured.Loss;
            errorSum += measured.Error;
            ratioSum += measured.LayerNorms.FirstToLast;
            since++;
            stepMsSum += sw.Elapsed.TotalMilliseconds;
        }
        Eval(t.MaxIters);
        return Finish(RunStatus.Done, t.MaxIters);
    }
}
