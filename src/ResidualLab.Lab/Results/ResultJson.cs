using System.Text.Json;
using System.Text.Json.Serialization;

namespace ResidualLab.Results;

/// <summary>
/// The serializer settings of every result file (metrics.jsonl, result.json). JSON has
/// no literal for NaN or infinity, and a diverged run produces them, so they are written as the strings
/// "NaN", "Infinity" and "-Infinity" (and read back as numbers with the same settings) instead of the
/// serializer throwing and the run's files being lost.
/// </summary>
internal static class ResultJson
{
    /// <summary>One object per line (metrics.jsonl).</summary>
    public static readonly JsonSerializerOptions Line = new() { NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals };

    /// <summary>An indented file with the property names as written.</summary>
    public static readonly JsonSerializerOptions Document = new(Line) { WriteIndented = true };

    /// <summary>An indented file whose C# property names become snake_case.</summary>
    public static readonly JsonSerializerOptions SnakeCaseDocument = new(Document) { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };
}
