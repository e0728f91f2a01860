using ResidualLab.Config;
using ResidualLab.Data;
using ResidualLab.Data.Tokenizers;
using ResidualLab.Families;
using ResidualLab.Models;

namespace ResidualLab.Checkpoints;

/// <summary>Reads a finished run's folder (config.txt, model.pt, vocabulary.json or tokenizer.json) back into a <see cref="GptCheckpoint"/>.</summary>
internal static class RunExport
{
    public static GptCheckpoint Load(string runDir)
    {
        string modelPath = Path.Combine(runDir, "model.pt");
        if (!File.Exists(modelPath))
            throw new ConfigException($"run folder '{runDir}' has no model.pt: the run did not finish; train it to the end first");
        var config = RunConfig.From(ConfigValues.FromCanonical(File.ReadAllText(Path.Combine(runDir, "config.txt")), Path.Combine(runDir, "config.txt")));
        // Runs record their tokenizer; for a folder without one, the config's corpus gives it again.
        string? saved = new[] { TokenizerJson.TokenizerRunFile, VocabularyJson.RunFileName }
            .Select(name => Path.Combine(runDir, name)).FirstOrDefault(File.Exists);
        var tokenizer = saved is not null
            ? TokenizerJson.Parse(File.ReadAllText(saved), saved)
            : CorpusLoader.TokenizerFor(config.Settings<GptSettings>().Data.Tokenizer, CorpusLoader.Splits(config.Settings<GptSettings>().Data));

        var model = new Gpt(config.Settings<GptSettings>().Shape with { VocabSize = tokenizer.VocabSize }, config.Connection);
        try
        {
            model.load(modelPath, strict: true);
        }
        catch (Exception ex) when (ex is ArgumentException or InvalidOperationException or IOException or EndOfStreamException)
        {
            model.Dispose();
            throw new ConfigException($"'{modelPath}' does not match its config.txt and vocabulary ({ex.Message.ReplaceLineEndings(" ")})");
        }
        return new GptCheckpoint(model, config, tokenizer);
    }
}
