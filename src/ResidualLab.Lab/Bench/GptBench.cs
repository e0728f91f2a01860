using ResidualLab.Config;
using ResidualLab.Data;
using ResidualLab.Families;
using ResidualLab.Native;
using ResidualLab.Training;
using ResidualLab.Training.Tasks;

namespace ResidualLab.Bench;

/// <summary>A fixed GPT training workload: model shape, batch, connection and train.dtype, as config overrides.</summary>
internal sealed record GptWorkload(string Name, int NLayer, int DModel, int NHead, int BlockSize, int BatchSize,
    string Connection = "pre-norm", string DType = "float32") : IBenchWorkload
{
    /// <summary>The reference GPT: 6 layers, d 192, 6 heads, context 128, batch 32, character level.</summary>
    public static GptWorkload Reference(string connection = "pre-norm") => new("reference-gpt", 6, 192, 6, 128, 32, connection);

    /// <summary>The seed experiment's model (configs/seed-1layer.toml): 1 layer, d 128, 4 heads, context 64, batch 32.</summary>
    public static GptWorkload Seed => new("seed-gpt", 1, 128, 4, 64, 32);

    /// <summary>A GPT-2-small-like model for GPUs: 12 layers, d 768, 12 heads, context 1024, batch 16.</summary>
    public static GptWorkload Gpt2Small => new("gpt2-small", 12, 768, 12, 1024, 16);

    public const int Vocabulary = 83; // the default corpus's character count

    public string Description => $"{NLayer} layers, d {DModel}, {NHead} heads, context {BlockSize}, batch {BatchSize}, {DType}";
    public string Unit => "token";
    public int ItemsPerStep => BatchSize * BlockSize;
    public string FlopsMethod => "6N + 12 L T d";
    public string PeerScript => "gpt_bench.py";

    public IReadOnlyList<string> PeerArguments(int steps, int warmup, int threads) =>
    [
        "--n-layer", $"{NLayer}", "--d-model", $"{DModel}", "--n-head", $"{NHead}", "--block-size", $"{BlockSize}",
        "--batch-size", $"{BatchSize}", "--vocab", $"{Vocabulary}", "--steps", $"{steps}", "--warmup", $"{warmup}", "--threads", $"{threads}",
    ];

    public BenchResult Run(int steps, int warmup, string device, int threads) =>
        GptBench.Run(this, steps, warmup, device, threads);

    public RunConfig Config(string device, int threads, IEnumerable<string>? extra = null)
    {
        var v = new ConfigValues();
        foreach (var o in new[]
                 {
                     $"model.n_layer={NLayer}", $"model.d_model={DModel}", $"model.n_head={NHead}",
                     $"model.block_size={BlockSize}", $"train.batch_size={BatchSize}", $"connection.name={Connection}",
                     $"train.device={device}", $"train.threads={threads}", $"train.dtype={DType}",
                 }.Concat(extra ?? []))
            v.Override(o);
        return RunConfig.From(v);
    }
}

/// <summary>
/// Times the trainer's own step (forward, backward, clipping, AdamW, garbage collection) on a
/// workload, on synthetic characters so no corpus is needed. Model FLOPs per token follow nanoGPT's
/// estimate: 6 N + 12 L T d, N the parameters without the position embedding.
/// </summary>
internal static class GptBench
{
    public static BenchResult Run(GptWorkload workload, int steps, int warmup, string device, int threads,
        IEnumerable<string>? extraConfig = null)
    {
        var config = workload.Config(device, threads, extraConfig);
        TorchRuntime.SetThreads(config.Threads);
        var dev = TorchRuntime.ResolveDevice(config.Device);
        var task = new LanguageModelTask(config, config.Settings<GptSettings>(), SyntheticCorpus(workload.BlockSize), dev);
        var trainer = new Trainer(task, config);
        var times = StepTimer.Time(() => trainer.Step(1e-4), steps, warmup, dev);
        long parameters = task.Model.ParameterCount();
        var result = BenchResult.FromSteps(workload.Name, times, workload.ItemsPerStep, FlopsPerToken(workload, parameters), parameters);
        task.Dispose();
        return result;
    }

    /// <summary>Model FLOPs per token of a GPT of this shape with <paramref name="parameters"/> parameters: 6 N + 12 L T d.</summary>
    public static double FlopsPerToken(GptWorkload workload, long parameters)
    {
        long nonEmbedding = parameters - (long)workload.BlockSize * workload.DModel;
        return 6.0 * nonEmbedding + 12.0 * workload.NLayer * workload.BlockSize * workload.DModel;
    }

    /// <summary>Random text over <see cref="GptWorkload.Vocabulary"/> characters, long enough for any context.</summary>
    public static TokenCorpus SyntheticCorpus(int blockSize)
    {
        var rng = new SplitMix64(12345);
        var chars = new char[Math.Max(200_000, 40 * blockSize)];
        for (int i = 0; i < chars.Length; i++) chars[i] = (char)('!' + (int)rng.NextBelow(GptWorkload.Vocabulary));
        return CharCorpus.FromText(new string(chars), 0.1, blockSize, "synthetic");
    }
}
