using System.Text.Json;
using ResidualLab.Config;
using ResidualLab.Data;
using ResidualLab.Data.Tokenizers;
using ResidualLab.Families;
using ResidualLab.Models;
using ResidualLab.Training.Tasks;
using static TorchSharp.torch;

namespace ResidualLab.Checkpoints;

/// <summary>
/// A trained GPT with what it takes to use it again: its run config and its vocabulary, stored as one
/// safetensors file. Tensors carry <see cref="NanoGptNames"/>; the metadata holds
/// <list type="bullet">
/// <item><c>reslab.config</c>: the canonical run config (config.txt), from which the model is rebuilt;</item>
/// <item><c>config</c>: nanoGPT's GPTConfig fields as JSON, plus the connection scheme;</item>
/// <item><c>eval</c>: how the fixed evaluation batches are drawn (JSON), so other tools can replicate them;</item>
/// <item><c>vocabulary</c> for a character-level run (<see cref="VocabularyJson"/>), else <c>tokenizer</c>
/// (<see cref="TokenizerJson"/>); <c>run_id</c>; <c>format</c> = "pt" (PyTorch tensors).</item>
/// </list>
/// </summary>
internal sealed record GptCheckpoint(Gpt Model, RunConfig Config, Tokenizer Tokenizer)
{
    public const string ConfigKey = "reslab.config";
    public const string NanoGptConfigKey = "config";
    public const string EvalKey = "eval";
    public const string VocabularyKey = "vocabulary";
    public const string TokenizerKey = "tokenizer";

    public void Save(string path)
    {
        var tensors = Model.state_dict()
            .Select(kv => TensorBytes.FromTensor(NanoGptNames.ToCheckpoint(kv.Key, Config.Connection), kv.Value))
            .ToList();
        var embedding = tensors.Single(t => t.Name == NanoGptNames.TokenEmbedding);
        tensors.Add(embedding with { Name = NanoGptNames.LmHead }); // the tied head, stored again as nanoGPT expects
        var m = Model.Config;
        var metadata = new Dictionary<string, string>
        {
            ["format"] = "pt",
            ["run_id"] = Config.RunId,
            [ConfigKey] = Config.Canonical,
            [NanoGptConfigKey] = JsonSerializer.Serialize(new
            {
                block_size = m.BlockSize, vocab_size = m.VocabSize, n_layer = m.NLayer, n_head = m.NHead,
                n_embd = m.DModel, dropout = m.Dropout, bias = m.Bias, connection = Config.Connection.Name,
                tokenizer = Tokenizer.Spec,
            }),
            [EvalKey] = JsonSerializer.Serialize(new
            {
                batch_size = Config.Train.BatchSize, eval_batches = Config.Train.EvalBatches,
                val_fraction = Config.Settings<GptSettings>().Data.ValFraction, test_fraction = Config.Settings<GptSettings>().Data.TestFraction, seed = LanguageModelTask.EvalSeed,
                // A corpus split by book names its validation books' places in its text; each is encoded on its own.
                val_ranges = Config.Settings<GptSettings>().Data.Path.Length == 0 && Config.Settings<GptSettings>().Data.Corpus == GutenbergCorpus.Name ? GutenbergCorpus.ValRanges() : null,
                sampler = "SplitMix64 offsets, Lemire unbiased bounded draws (Data/TokenBatcher.cs)",
            }),
            [Tokenizer is CharTokenizer ? VocabularyKey : TokenizerKey] = TokenizerJson.Write(Tokenizer),
        };
        SafeTensors.Write(path, new SafeTensorsFile(metadata, tensors));
    }

    /// <summary>Rebuilds the GPT from a checkpoint written by <see cref="Save"/>, with exactly the stored values.</summary>
    public static GptCheckpoint Load(string path)
    {
        if (!File.Exists(path))
            throw new ConfigException($"checkpoint '{path}' does not exist; write one with 'reslab export RUN --format safetensors'");
        var file = SafeTensors.Read(path);
        string source = $"checkpoint '{path}'";
        string Meta(string key) => file.Metadata.TryGetValue(key, out var v) ? v : throw new SafeTensorsException(
            $"{source} has no '{key}' in its metadata; only files written by 'reslab export' carry the run's config and vocabulary");
        var config = RunConfig.From(ConfigValues.FromCanonical(Meta(ConfigKey), $"{source} metadata '{ConfigKey}'"));
        string tokenizerKey = file.Metadata.ContainsKey(TokenizerKey) ? TokenizerKey : VocabularyKey;
        var tokenizer = TokenizerJson.Parse(Meta(tokenizerKey), $"{source} metadata '{tokenizerKey}'");

        var model = new Gpt(config.Settings<GptSettings>().Shape with { VocabSize = tokenizer.VocabSize }, config.Connection);
        try
        {
            Restore(model, config, file, source);
        }
        catch
        {
            model.Dispose();
            throw;
        }
        return new GptCheckpoint(model, config, tokenizer);
    }

    static void Restore(Gpt model, RunConfig config, SafeTensorsFile file, string source)
    {
        SafeTensorsException Mismatch(string what) => new($"{source} does not fit its own config ({config.Label}): {what}");
        var expected = new HashSet<string>(StringComparer.Ordinal) { NanoGptNames.LmHead };
        using (no_grad())
        {
            foreach (var (moduleName, target) in model.state_dict())
            {
                string name = NanoGptNames.ToCheckpoint(moduleName, config.Connection);
                expected.Add(name);
                var entry = file.Find(name) ?? throw Mismatch($"tensor '{name}' is missing");
                if (!entry.Shape.SequenceEqual(target.shape))
                    throw Mismatch($"tensor '{name}' has shape [{string.Join(", ", entry.Shape)}], the model needs [{string.Join(", ", target.shape)}]");
                using var values = TensorBytes.ToTensor(entry);
                target.copy_(values);
            }
        }
        var extra = file.Tensors.Select(t => t.Name).Where(n => !expected.Contains(n)).ToList();
        if (extra.Count > 0) throw Mismatch($"unexpected tensors: {string.Join(", ", extra.Take(5))}{(extra.Count > 5 ? ", ..." : "")}");
        var head = file.Find(NanoGptNames.LmHead) ?? throw Mismatch($"tensor '{NanoGptNames.LmHead}' is missing");
        var embedding = file.Find(NanoGptNames.TokenEmbedding)!;
        if (head.DType != embedding.DType || !head.Shape.SequenceEqual(embedding.Shape) || !head.Data.Span.SequenceEqual(embedding.Data.Span))
            throw Mismatch($"'{NanoGptNames.LmHead}' differs from '{NanoGptNames.TokenEmbedding}'; this GPT ties its head to the token embedding");
    }
}
