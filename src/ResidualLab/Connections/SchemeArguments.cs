namespace ResidualLab.Connections;

/// <summary>
/// The checks a scheme's record runs on its options when it is made, so that no scheme exists with an option out of
/// range, whether it came from a config through <see cref="ConnectionCatalog"/> or from user code. Each failure is an
/// <see cref="ArgumentOutOfRangeException"/> whose parameter name is the option's key (as configs spell it) and whose
/// message names the scheme, the option and the allowed range.
/// </summary>
internal static class SchemeArguments
{
    public static int InRange(int value, int min, int max, string scheme, string key) =>
        value >= min && value <= max ? value : throw OutOfRange(scheme, key, $"[{min}, {max}]", value);

    public static double InRange(double value, double min, double max, string scheme, string key) =>
        value >= min && value <= max ? value : throw OutOfRange(scheme, key, $"[{min}, {max}]", value);

    public static string OneOf(string value, IReadOnlyList<string> allowed, string scheme, string key) =>
        allowed.Contains(value) ? value : throw OutOfRange(scheme, key, $"one of {string.Join(", ", allowed)}", value);

    static ArgumentOutOfRangeException OutOfRange(string scheme, string key, string allowed, object value) =>
        new(key, $"{scheme}: {key} must be {(allowed.StartsWith('[') ? "in " : "")}{allowed}, got {Show(value)}");

    static string Show(object value) => value switch
    {
        double d => d.ToString(System.Globalization.CultureInfo.InvariantCulture),
        string s => $"'{s}'",
        _ => value.ToString() ?? "",
    };
}
