using System.Text.Json;

namespace ResidualLab.Data;

/// <summary>
/// The data a run trained on: the name its config gives it (data.path, data.corpus or data.images) and
/// the sha256 of its bytes. Runs that give one name must have trained on the same bytes to be compared.
/// </summary>
internal sealed record DataIdentity(string Name, string Sha256);

/// <summary>data.json in a run folder: which data (with its sha256), tokenizer and token cache (with its sha256) the run trained on.</summary>
internal static class DataProvenance
{
    public const string FileName = "data.json";

    public static void Write(string runDir, DataIdentity data, TokenCorpus corpus) =>
        AtomicFile.WriteText(Path.Combine(runDir, FileName), JsonSerializer.Serialize(new
        {
            data = data.Name,
            data_sha256 = data.Sha256,
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

    public static void Write(string runDir, DataIdentity data, ImageSet images) =>
        AtomicFile.WriteText(Path.Combine(runDir, FileName), JsonSerializer.Serialize(new
        {
            data = data.Name,
            data_sha256 = data.Sha256,
            classes = images.Classes,
            train_images = images.Train.Count,
            test_images = images.Test.Count,
            height = images.Height,
            width = images.Width,
        }, new JsonSerializerOptions { WriteIndented = true }));
}
