using System.Text.Json;

namespace ResidualLab.Data;

/// <summary>data.json in a run folder: which text, tokenizer and token cache (with its sha256) the run trained on.</summary>
internal static class DataProvenance
{
    public const string FileName = "data.json";

    public static void Write(string runDir, TokenCorpus corpus) =>
        File.WriteAllText(Path.Combine(runDir, FileName), JsonSerializer.Serialize(new
        {
            source = corpus.Source,
            tokenizer = corpus.Tokenizer.Spec,
            tokenizer_id = corpus.Tokenizer.Id,
            vocab_size = corpus.VocabSize,
            train_tokens = corpus.Train.Length,
            val_tokens = corpus.Val.Length,
            test_tokens = corpus.Test.Length,
            token_cache = corpus.Cache?.Path,
            token_cache_sha256 = corpus.Cache?.Sha256,
            bytes_per_token = corpus.Cache?.BytesPerToken,
        }, new JsonSerializerOptions { WriteIndented = true }));
}
