using ResidualLab.Config;
using ResidualLab.Data;
using ResidualLab.Diagnostics;
using ResidualLab.Families;
using ResidualLab.Models;
using ResidualLab.Results;
using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace ResidualLab.Training.Tasks;

/// <summary>One evaluation of a classifier: losses and error rates (fractions) on the splits, and the
/// mini-batch loss, error and first-to-last gradient-norm ratio averaged over the steps since the last one.</summary>
internal sealed record ClassifierEval(
    int Step, int Epoch, double TrainLoss, double TrainError, double TestLoss, double TestError,
    double BatchLoss, double BatchError, double GradRatio)
{
    /// <summary>Loss on the validation images (the end of the published training split): for selection.</summary>
    public double ValLoss { get; init; } = double.NaN;

    /// <summary>Error on the validation images.</summary>
    public double ValError { get; init; } = double.NaN;

    /// <summary>The reading names of a classifier's error rates (fractions) in the results store, at each evaluation's step.</summary>
    public const string TrainErrorName = "train_error", ValErrorName = "val_error", TestErrorName = "test_error";

    /// <summary>The reading names of the averages over the steps since the previous evaluation, and of the epoch, at each evaluation's step.</summary>
    public const string BatchLossName = "batch_loss", BatchErrorName = "batch_error", GradRatioName = "grad_ratio_first_to_last", EpochName = "epoch";

    /// <summary>The reading names of each weight layer's gradient norm at initialisation (step 0) and averaged over every step (at the last).</summary>
    public const string GradNormAtInitName = "grad_norm_init", GradNormMeanName = "grad_norm_mean";
}

/// <summary>A classifier run: the shared result, the curve of evaluations, and the gradient norms per
/// layer at initialisation and averaged over all training steps.</summary>
internal sealed record ClassifierResult(
    TrainResult Run, IReadOnlyList<ClassifierEval> Curve, GradientNorms AtInit, GradientNorms DuringTraining)
{
    public ClassifierEval? Final => Curve.Count > 0 ? Curve[^1] : null;
}

/// <summary>
/// Image classification as He et al. 2016 (sec. 4.2) train their CIFAR nets: SGD with momentum 0.9 and
/// weight decay (here on weights only, not on batch-norm scales and biases), mini-batches reshuffled
/// every epoch, the learning rate divided by 10 at 50% and 75% of the steps, no dropout. Evaluation
/// measures loss and error on the first eval_batches x batch_size training images, on the validation
/// images (the last data.val_images of the published training split, never trained on) and on the
/// whole test split (evaluation mode, no augmentation). The gradient norm of every weight layer is read at
/// initialisation (one fixed batch, before any update) and at every training step; on probe steps it
/// is reported as grad_norm per weight layer.
/// </summary>
internal sealed class ImageClassificationTask : ITrainingTask
{
    readonly RunConfig _config;
    readonly VisionSettings _vision;
    readonly ImageSet _data;
    readonly ImageSplit _train;
    readonly ImageSplit _val;
    readonly Device _device;

    readonly List<ClassifierEval> _curve = [];
    readonly double[] _normSums;
    int _normSteps;
    double _lossSum, _errorSum, _ratioSum;
    int _since;
    GradientNorms? _atInit;
    Tensor? _batchError;
    GradientNorms? _stepNorms;

    public ImageClassifier Model { get; }
    public Sgd Optimizer { get; }
    public StepSchedule Schedule { get; }
    public ImageBatcher Batches { get; }

    public ImageClassificationTask(RunConfig config, VisionSettings vision, ImageSet data, Device device)
    {
        _vision = vision;
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
        Model = vision.Kind.Build(model, config.Connection);
        Model.to(device);

        var t = config.Train;
        Optimizer = new Sgd(ParameterGroups.Of(Model, t.Decay), _vision.Momentum, t.WeightDecay);
        Schedule = new StepSchedule(t.Lr, t.WarmupIters, t.MaxIters);
        Batches = new ImageBatcher(data, _train, t.BatchSize, (ulong)t.Seed, _vision.Augment ? 4 : 0);
        _normSums = new double[Model.WeightLayers.Count];
    }

    nn.Module ITrainingTask.Model => Model;
    IOptimizer ITrainingTask.Optimizer => Optimizer;
    ILrSchedule ITrainingTask.Schedule => Schedule;
    IBatchSampler ITrainingTask.Batches => Batches;

    public int TrainImages => _train.Count;

    public (long Count, string Unit) BatchSize => (Math.Min(_config.Train.BatchSize, _train.Count), "images");

    public void OnStart() => _atInit = ProbeGradients();

    public Tensor Loss(IBatch batch)
    {
        var (x, y) = batch.ToTensors(_device);
        var logits = Model.call(x);
        _batchError = logits.argmax(1).ne(y).to_type(ScalarType.Float32).mean();
        return F.cross_entropy(logits, y);
    }

    public void AfterBackward() => _stepNorms = GradientNorms.Read(Model);

    /// <summary>Only steps that made an update count in the averages.</summary>
    public void AfterStep(double loss)
    {
        for (int i = 0; i < _normSums.Length; i++) _normSums[i] += _stepNorms!.Norms[i];
        _normSteps++;
        _lossSum += loss;
        _errorSum += _batchError!.item<float>();
        _ratioSum += _stepNorms!.FirstToLast;
        _since++;
    }

    public void ArmProbes() { }

    public IEnumerable<Diagnostic> ReadProbes(int step) =>
        _stepNorms!.Norms.Select((norm, i) => new Diagnostic(step, GradientNormProbe.Name, i, norm)).ToList();

    /// <summary>Loss and error on the first eval_batches x batch_size training images, the validation images
    /// and the test split; adds a point to the curve.</summary>
    public EvalMetrics Evaluate(int step)
    {
        var (trainLoss, trainError, valLoss, valError, testLoss, testError) = Measure();
        int n = Math.Max(1, _since);
        _curve.Add(new ClassifierEval(step, Batches.Position.Epoch, trainLoss, trainError, testLoss, testError,
            _lossSum / n, _errorSum / n, _ratioSum / n)
        { ValLoss = valLoss, ValError = valError });
        _lossSum = _errorSum = _ratioSum = 0;
        _since = 0;
        return new EvalMetrics(step, trainLoss, valLoss, testLoss);
    }

    /// <summary>The error rates of the evaluation at <paramref name="step"/> (training, validation and test images).</summary>
    public IEnumerable<Diagnostic> EvalReadings(int step) => _curve.Count == 0 || _curve[^1].Step != step ? [] :
    [
        new(step, ClassifierEval.TrainErrorName, 0, _curve[^1].TrainError),
        new(step, ClassifierEval.ValErrorName, 0, _curve[^1].ValError),
        new(step, ClassifierEval.TestErrorName, 0, _curve[^1].TestError),
        new(step, ClassifierEval.BatchLossName, 0, _curve[^1].BatchLoss),
        new(step, ClassifierEval.BatchErrorName, 0, _curve[^1].BatchError),
        new(step, ClassifierEval.GradRatioName, 0, _curve[^1].GradRatio),
        new(step, ClassifierEval.EpochName, 0, _curve[^1].Epoch),
    ];

    /// <summary>Each weight layer's gradient norm on the first training batch, before any update.</summary>
    public IEnumerable<Diagnostic> StartReadings() =>
        _atInit!.Norms.Select((norm, i) => new Diagnostic(0, ClassifierEval.GradNormAtInitName, i, norm)).ToList();

    /// <summary>Each weight layer's gradient norm averaged over the steps that made an update.</summary>
    public IEnumerable<Diagnostic> EndReadings(int step) => _normSteps == 0 ? [] :
        _normSums.Select((sum, i) => new Diagnostic(step, ClassifierEval.GradNormMeanName, i, sum / _normSteps)).ToList();

    /// <summary>The weight layers, in the order of the per-layer gradient-norm readings.</summary>
    public IReadOnlyDictionary<string, IReadOnlyList<string>> ReadingLabels()
    {
        IReadOnlyList<string> layers = Model.WeightLayers.Select(l => l.Name).ToList();
        return new Dictionary<string, IReadOnlyList<string>>
        {
            [GradientNormProbe.Name] = layers, [ClassifierEval.GradNormAtInitName] = layers, [ClassifierEval.GradNormMeanName] = layers,
        };
    }

    /// <summary>Loss and error on the first eval_batches x batch_size training images, the validation images and the test split.</summary>
    public (double TrainLoss, double TrainError, double ValLoss, double ValError, double TestLoss, double TestError) Measure()
    {
        Model.eval();
        (double Loss, double Error) On(ImageSplit split, int limit)
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
        var train = On(_train, _config.Train.EvalBatches * _config.Train.BatchSize);
        var val = On(_val, int.MaxValue);
        var test = On(_data.Test, int.MaxValue);
        Model.train();
        return (train.Loss, train.Error, val.Loss, val.Error, test.Loss, test.Error);
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

    /// <summary>The curve so far and the gradient norms at initialisation and averaged over the steps taken.</summary>
    public ClassifierResult Result(TrainResult run)
    {
        var atInit = _atInit ?? throw new InvalidOperationException("the classifier has not been trained");
        var during = _normSteps == 0 ? atInit : atInit with { Norms = _normSums.Select(x => x / _normSteps).ToList() };
        return new ClassifierResult(run, _curve.ToList(), atInit, during);
    }

    /// <summary>Training FLOPs per step: 2 per multiply-add of every convolution and linear layer for one image
    /// (<see cref="ModelFlops"/>), times 3 for forward and backward, times the images of a batch.</summary>
    public IReadOnlyList<RunFact> Facts() =>
        [new(RunFact.FlopsPerStep, 3 * 2.0 * ModelFlops.ForwardMultiplyAdds(Model, _data.Channels, _data.Height, _data.Width) * BatchSize.Count)];

    public void SaveState(BinaryWriter w)
    {
        foreach (var norm in _atInit!.Norms) w.Write(norm);
        foreach (var sum in _normSums) w.Write(sum);
        w.Write(_normSteps);
        w.Write(_lossSum);
        w.Write(_errorSum);
        w.Write(_ratioSum);
        w.Write(_since);
        w.Write(_curve.Count);
        foreach (var e in _curve)
        {
            w.Write(e.Step);
            w.Write(e.Epoch);
            foreach (var x in new[] { e.TrainLoss, e.TrainError, e.TestLoss, e.TestError, e.BatchLoss, e.BatchError, e.GradRatio, e.ValLoss, e.ValError }) w.Write(x);
        }
    }

    public void LoadState(BinaryReader r)
    {
        var layers = Model.WeightLayers.Select(l => l.Name).ToList();
        _atInit = new GradientNorms(layers, layers.Select(_ => r.ReadDouble()).ToList());
        for (int i = 0; i < _normSums.Length; i++) _normSums[i] = r.ReadDouble();
        _normSteps = r.ReadInt32();
        _lossSum = r.ReadDouble();
        _errorSum = r.ReadDouble();
        _ratioSum = r.ReadDouble();
        _since = r.ReadInt32();
        _curve.Clear();
        int points = r.ReadInt32();
        for (int i = 0; i < points; i++)
            _curve.Add(new ClassifierEval(r.ReadInt32(), r.ReadInt32(), r.ReadDouble(), r.ReadDouble(), r.ReadDouble(),
                r.ReadDouble(), r.ReadDouble(), r.ReadDouble(), r.ReadDouble())
            { ValLoss = r.ReadDouble(), ValError = r.ReadDouble() });
    }

    public DataIdentity DescribeData(string runDir)
    {
        var identity = new DataIdentity(_vision.Images, _data.Sha256);
        DataProvenance.Write(runDir, identity, _data);
        return identity;
    }

    /// <summary>model.pt once done.</summary>
    public void WriteRunFiles(string runDir, TrainResult result)
    {
        if (result.Status == RunStatus.Done)
            AtomicFile.Write(Path.Combine(runDir, "model.pt"), file =>
            {
                using var writer = new BinaryWriter(file, System.Text.Encoding.UTF8, leaveOpen: true);
                Model.save(writer);
            });
    }

    public void Dispose()
    {
        Optimizer.Dispose();
        Model.Dispose();
    }
}
