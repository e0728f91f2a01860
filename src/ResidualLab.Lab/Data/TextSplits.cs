using System.Security.Cryptography;
using System.Text;

namespace ResidualLab.Data;

/// <summary>
/// A corpus's text cut into training, validation and test documents before any tokenisation, so every
/// tokenizer sees the same split. Each document is encoded on its own and the ids are concatenated.
/// </summary>
/// <param name="Name">Short name for cache files: the registry corpus, or "file".</param>
/// <param name="TextSha256">sha256 of the whole UTF-8 text the splits came from.</param>
internal sealed record TextSplits(string Source, string Name, string TextSha256,
    IReadOnlyList<string> Train, IReadOnlyList<string> Val, IReadOnlyList<string> Test)
{
    public IEnumerable<string> All => Train.Concat(Val).Concat(Test);

    /// <summary>Identifies text and split: the hash of the text and every document's length, split by split.</summary>
    public string Key => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(
        $"{TextSha256}|{string.Join(',', Train.Select(d => d.Length))}|{string.Join(',', Val.Select(d => d.Length))}|{string.Join(',', Test.Select(d => d.Length))}")));

    /// <summary>
    /// The text in order: the first <c>1 - valFraction - testFraction</c> trains, the next <c>valFraction</c>
    /// validates (selection: learning rates, steps), the last <c>testFraction</c> tests (the numbers reported).
    /// With no test fraction the test split is empty (nanoGPT's split).
    /// </summary>
    public static TextSplits ByFraction(string text, double valFraction, string source, string name, double testFraction = 0)
    {
        if (text.Length == 0) throw new ConfigException($"data '{source}' is empty; give a text file with at least a few thousand characters");
        if (!(valFraction > 0 && testFraction >= 0 && valFraction + testFraction < 1))
            throw new ConfigException($"data.val_fraction must be above 0, data.test_fraction at least 0 and their sum below 1, got {valFraction} and {testFraction}");
        // Written as bench/pytorch/nanogpt_eval.py computes it, so both find the same split points.
        int nTrain = (int)(text.Length * (1 - valFraction - testFraction));
        int nTest = (int)(text.Length * testFraction);
        return new TextSplits(source, name, Sha256(text), [text[..nTrain]], [text[nTrain..^nTest]], nTest == 0 ? [] : [text[^nTest..]]);
    }

    public static string Sha256(string text) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text)));

    /// <summary>Reads a UTF-8 text file (a leading BOM dropped); a missing file or invalid UTF-8 is a clear error.</summary>
    public static string ReadUtf8(string path)
    {
        if (!File.Exists(path))
            throw new ConfigException($"data file '{path}' does not exist; pass an existing UTF-8 text file with --data");
        byte[] bytes;
        try { bytes = File.ReadAllBytes(path); }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new ConfigException($"data file '{path}' cannot be read: {ex.Message}");
        }
        string text;
        try { text = new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(bytes); }
        catch (DecoderFallbackException ex)
        {
            throw new ConfigException($"data file '{path}' is not valid UTF-8 (bad byte at offset {ex.Index}); convert it with 'iconv -t UTF-8'");
        }
        return text.Length > 0 && text[0] == '\uFEFF' ? text[1..] : text;
    }
}
