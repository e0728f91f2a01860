using ResidualLab.Config;
using ResidualLab.Data;
using ResidualLab.Data.Tokenizers;
using ResidualLab.Diagnostics;
using ResidualLab.Families;
using ResidualLab.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace ResidualLab.Training.Tasks;

/// <summary>
/// Next-token prediction with a GPT (nanoGPT's recipe): AdamW with decay on matrices only (train.decay), warmup and
/// cosine schedule, random windows of the training text as batches, evaluation on fixed batches of
/// both splits. With train.dtype = bfloat16 the model's matrix multiplies run on bf16 weights and AdamW
/// keeps fp32 masters. Probes: per-block gradient norms and the residual stream (<see cref="StreamProbe"/>).
/// </summary>
internal sealed class LanguageModelTask : ITrainingTask
{
    /// <summary>Seed of the fixed evaluation batches: the same for every run, so runs compare on the same text.</summary>
    public const ulong EvalSeed = 0x5EED_E7A1;

    readonly RunConfig _config;
    readonly GptSettings _gpt;
    readonly TokenCorpus _corpus;
    readonly Device _device;
    readonly GradientNormProbe _gradientProbe;
    readonly StreamProbe _streamProbe;

    public Gpt Model { get; }
    public AdamW Optimizer { get; }
    public LrSchedule Schedule { get; }
    public TokenBatcher TrainBatches { get; }

    public LanguageModelTask(RunConfig config, GptSettings gpt, TokenCorpus corpus, Device device)
    {
        _config = config;
        _gpt = gpt;
        _corpus = corpus;
        _device = device;
        int blockSize = gpt.Shape.BlockSize;
        if (corpus.Train.Length <= blockSize + 1 || corpus.Val.Length <= blockSize + 1)
            throw new ConfigException($"corpus '{corpus.Source}' is too short for block_size {blockSize}");

        var shape = gpt.Shape with { VocabSize = corpus.VocabSize };
        if (gpt.MatchParams is { } target) shape = ParameterMatch.Width(shape, config.Connection, target);
        manual_seed(config.Train.Seed);
        Model = new Gpt(shape, config.Connection);
        Model.to(device);
        if (config.Train.Dtype == TrainDtype.BFloat16) Model.CastMatmulWeights(ScalarType.BFloat16);

        var t = config.Train;
        // Unit-norm weights (nGPT) train without weight decay: the renormalisation after each step sets their scale.
        // A scheme's AdamW rule (CompleteP's depth rule) scales the blocks' learning rate and eps.
        var rule = config.Connection.OptimizerRule(shape.NLayer);
        Optimizer = new AdamW(ParameterGroups.Of(Model, t.Decay, Model.Blocks, rule), t.Beta1, t.Beta2,
            Model.UnitNormWeights ? 0 : t.WeightDecay, eps: AdamW.DefaultEps * rule.Eps);
        Schedule = new LrSchedule(t.Lr, t.MinLr, t.WarmupIters, t.MaxIters);
        TrainBatches = new TokenBatcher(corpus.Train, t.BatchSize, blockSize, (ulong)t.Seed);
        _gradientProbe = new GradientNormProbe(Model.Blocks.ToList<nn.Module>());
        _streamProbe = new StreamProbe(Model);
    }

    nn.Module ITrainingTask.Model => Model;
    IOptimizer ITrainingTask.Optimizer => Optimizer;
    ILrSchedule ITrainingTask.Schedule => Schedule;
    IBatchSampler ITrainingTask.Batches => TrainBatches;

    public (long Count, string Unit) BatchSize => ((long)_config.Train.BatchSize * Model.Config.BlockSize, "tokens");

    public void OnStart() { }

    public Tensor Loss(IBatch batch)
    {
        var (x, y) = batch.ToTensors(_device);
        return Model.Loss(x, y);
    }

    public void AfterBackward() { }

    /// <summary>Puts unit-norm weights (nGPT) back on the sphere after the update, through the fp32 masters in bf16 training.</summary>
    public void AfterStep(double loss)
    {
        if (Model.UnitNormWeights) Model.NormaliseWeights(Optimizer.MasterViews().ToDictionary(m => m.Param.Handle, m => m.Master));
    }

    public void ArmProbes() => _streamProbe.Arm();

    public IEnumerable<Diagnostic> ReadProbes(int step) => _gradientProbe.Measure(step).Concat(_streamProbe.Measure(step));

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

    /// <summary>Training FLOPs per step of the model as built (its corpus's vocabulary, a matched width), for equal-compute
    /// comparisons; and the width a matched run was built at.</summary>
    public IReadOnlyList<RunFact> Facts()
    {
        var shape = Model.Config;
        var facts = new List<RunFact> { new(RunFact.FlopsPerStep, GptFlops.TrainingPerStep(shape, _config.Connection, _config.Train.BatchSize)) };
        if (_gpt.MatchParams is not null) facts.AddRange([new(RunFact.MatchedWidth, shape.DModel), new(RunFact.MatchedHeads, shape.NHead)]);
        return facts;
    }

    public void SaveState(BinaryWriter writer) { }

    public void LoadState(BinaryReader reader) { }

    public DataIdentity DescribeData(string runDir)
    {
        var data = _gpt.Data;
        var identity = new DataIdentity(data.Path.Length > 0 ? data.Path : data.Corpus, _corpus.TextSha256);
        DataProvenance.Write(runDir, identity, _corpus);
        return identity;
    }

    /// <summary>Once done: model.pt (fp32 weights) and the tokenizer.</summary>
    public void WriteRunFiles(string runDir, TrainResult result)
    {
        if (result.Status != RunStatus.Done) return;
        SaveModel(Path.Combine(runDir, "model.pt"));
        AtomicFile.WriteText(Path.Combine(runDir, TokenizerJson.RunFileName(_corpus.Tokenizer)), TokenizerJson.Write(_corpus.Tokenizer));
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
        AtomicFile.Write(path, file =>
        {
            using var writer = new BinaryWriter(file, System.Text.Encoding.UTF8, leaveOpen: true);
            nn.Module.save_state_dict(writer, state);
        });
    }

    public void Dispose()
    {
        Optimizer.Dispose();
        Model.Dispose();
    }
}
