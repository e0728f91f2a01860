namespace ResidualLab;

/// <summary>A user's configuration or input is wrong; the message says what, where and how to fix it.</summary>
public class ConfigException(string message) : Exception(message)
{
    /// <summary>The library's complaint about an argument, as a config error at <paramref name="origin"/> (the file and line, or
    /// the command-line option, that set it).</summary>
    public static ConfigException At(string origin, ArgumentException ex) => new($"{origin}: {MessageOf(ex)}");

    /// <summary>An argument exception's message without the "(Parameter 'x')" that .NET appends.</summary>
    public static string MessageOf(ArgumentException ex) =>
        ex.ParamName is { } name ? ex.Message.Replace($" (Parameter '{name}')", "", StringComparison.Ordinal) : ex.Message;
}
