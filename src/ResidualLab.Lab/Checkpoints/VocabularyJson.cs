using System.Text.Json;

namespace ResidualLab.Checkpoints;

/// <summary>
/// A character vocabulary as JSON: an array of UTF-16 code units in token order (token i is the code
/// unit at index i; for text in the Basic Multilingual Plane, the character chr(v[i])). Code units, not
/// strings, because the corpus splits text into .NET chars, and a lone surrogate has no JSON string.
/// </summary>
internal static class VocabularyJson
{
    /// <summary>The vocabulary file a finished run leaves in its folder.</summary>
    public const string RunFileName = "vocabulary.json";

    public static string Write(IReadOnlyList<char> vocabulary) => JsonSerializer.Serialize(vocabulary.Select(c => (int)c));

    /// <param name="source">Names where the text came from, for error messages.</param>
    public static char[] Parse(string json, string source)
    {
        int[]? units;
        try { units = JsonSerializer.Deserialize<int[]>(json); }
        catch (JsonException) { units = null; }
        if (units is null || units.Length == 0 || units.Any(u => u is < 0 or > char.MaxValue) || units.Distinct().Count() != units.Length)
            throw new ConfigException($"{source}: the vocabulary is not a JSON array of distinct UTF-16 code units (0-65535)");
        return units.Select(u => (char)u).ToArray();
    }
}
