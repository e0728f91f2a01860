using System.Globalization;
using System.Text;
using Tomlyn.Syntax;

namespace ResidualLab.Config;

/// <summary>A value and where it came from ("file.toml:3:5", "--set", "default").</summary>
internal sealed record ConfigValue(object Value, string Origin);

/// <summary>
/// A run configuration as flat, typed "section.key" values, each with its origin, checked against
/// <see cref="ConfigSchema"/> as it is filled: an unknown key or a wrong type is an error that names the
/// key, where it came from and the closest valid key.
/// </summary>
internal sealed class ConfigValues
{
    readonly SortedDictionary<string, ConfigValue> _values = new(StringComparer.Ordinal);

    public IReadOnlyDictionary<string, ConfigValue> Values => _values;

    public ConfigValues Clone()
    {
        var c = new ConfigValues();
        foreach (var (k, v) in _values) c._values[k] = v;
        return c;
    }

    /// <summary>Sets a key from a typed value (TOML) or text (--set), checking key and type.</summary>
    public void Set(string key, object value, string origin)
    {
        if (ConfigSchema.IsConnectionOption(key))
        {
            _values[key] = new ConfigValue(value is string s ? ParseLoose(s) : Normalise(value), origin);
            return;
        }
        var schema = ConfigSchema.Find(key) ?? throw new ConfigException(
            $"{origin}: unknown key '{key}'{Suggest.DidYouMean(key, ConfigSchema.Keys.Select(k => k.Key))}");
        _values[key] = new ConfigValue(Coerce(schema, value, origin), origin);
    }

    /// <summary>Applies one "section.key=value" override.</summary>
    public void Override(string assignment)
    {
        int eq = assignment.IndexOf('=');
        if (eq <= 0)
            throw new ConfigException($"--set '{assignment}': expected section.key=value, e.g. --set model.n_layer=4");
        string key = assignment[..eq].Trim();
        if (!key.Contains('.'))
            throw new ConfigException($"--set '{assignment}': the key needs its section, e.g. train.{key}{Suggest.DidYouMean(key, ConfigSchema.Keys.Select(k => k.Key.Split('.')[1]))}");
        Set(key, assignment[(eq + 1)..].Trim(), $"--set {key}");
    }

    public object Get(string key) =>
        _values.TryGetValue(key, out var v) ? v.Value : (ConfigSchema.Find(key)?.Default
            ?? throw new InvalidOperationException($"no schema key '{key}'"));

    public string OriginOf(string key) => _values.TryGetValue(key, out var v) ? v.Origin : "default";

    public long Int(string key) => (long)Get(key);
    public double Float(string key) => (double)Get(key);

    /// <summary>The integer <paramref name="key"/>, checked to lie in [<paramref name="min"/>, <paramref name="max"/>].</summary>
    /// <exception cref="ConfigException">Out of range: names the key, where it was set and the range.</exception>
    public int IntIn(string key, long min, long max = int.MaxValue)
    {
        long x = Int(key);
        if (x < min || x > max)
            throw new ConfigException($"{OriginOf(key)}: '{key}' must be in [{min}, {max}], got {x}");
        return (int)x;
    }

    /// <summary>The number <paramref name="key"/>, checked to be finite and in [<paramref name="min"/>, <paramref name="max"/>]
    /// (open at <paramref name="min"/> when <paramref name="minExclusive"/>).</summary>
    /// <exception cref="ConfigException">Out of range: names the key, where it was set and the range.</exception>
    public double FloatIn(string key, double min, double max, bool minExclusive = false)
    {
        double x = Float(key);
        bool ok = (minExclusive ? x > min : x >= min) && x <= max && double.IsFinite(x);
        if (!ok)
            throw new ConfigException($"{OriginOf(key)}: '{key}' must be in {(minExclusive ? "(" : "[")}{min}, {max}], got {x}");
        return x;
    }
    public bool Bool(string key) => (bool)Get(key);
    public string String(string key) => (string)Get(key);

    /// <summary>The options of the connection (connection.* except name), raw.</summary>
    public IReadOnlyDictionary<string, object> SchemeOptions =>
        _values.Where(kv => ConfigSchema.IsConnectionOption(kv.Key))
               .ToDictionary(kv => kv.Key["connection.".Length..], kv => kv.Value.Value);

    static object Coerce(ConfigKey schema, object value, string origin)
    {
        if (value is string text && schema.Type != ConfigType.String) value = ParseLoose(text);
        object? result = (schema.Type, value) switch
        {
            (ConfigType.Int, long l) => l,
            (ConfigType.Int, int i) => (long)i,
            (ConfigType.Float, double d) => d,
            (ConfigType.Float, long l) => (double)l,
            (ConfigType.Bool, bool b) => b,
            (ConfigType.String, string s) => s,
            _ => null,
        };
        return result ?? throw new ConfigException(
            $"{origin}: '{schema.Key}' must be {Describe(schema.Type)}, got {Show(value)}");
    }

    static object Normalise(object value) => value is int i ? (long)i : value;

    /// <summary>Text from the command line to the most specific TOML-like type.</summary>
    static object ParseLoose(string text)
    {
        if (long.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out long l)) return l;
        if (double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out double d)) return d;
        if (text is "true" or "false") return text == "true";
        if (text.Length >= 2 && text[0] == '"' && text[^1] == '"') return text[1..^1];
        return text;
    }

    static string Describe(ConfigType t) => t switch
    {
        ConfigType.Int => "an integer",
        ConfigType.Float => "a number",
        ConfigType.Bool => "true or false",
        _ => "a string",
    };

    static string Show(object v) => v is string s ? $"\"{s}\"" : Convert.ToString(v, CultureInfo.InvariantCulture) ?? "?";

    /// <summary>
    /// Canonical text of the values that define a run: sorted key=value lines, defaults included
    /// (except those of keys marked <see cref="ConfigKey.InRunIdAtDefault"/> false).
    /// </summary>
    public string Canonical()
    {
        var all = new SortedDictionary<string, object>(StringComparer.Ordinal);
        foreach (var k in ConfigSchema.Keys.Where(k => k.InRunId))
            if (k.InRunIdAtDefault || !Get(k.Key).Equals(k.Default)) all[k.Key] = Get(k.Key);
        foreach (var (k, v) in _values.Where(kv => ConfigSchema.IsConnectionOption(kv.Key))) all[k] = v.Value;
        var sb = new StringBuilder();
        foreach (var (k, v) in all)
            sb.Append(k).Append('=').Append(v switch
            {
                double d => d.ToString("R", CultureInfo.InvariantCulture),
                bool b => b ? "true" : "false",
                string s => $"\"{s}\"",
                _ => Convert.ToString(v, CultureInfo.InvariantCulture),
            }).Append('\n');
        return sb.ToString();
    }

    /// <summary>Rebuilds the values of a run from its canonical text (config.txt of a run folder).</summary>
    public static ConfigValues FromCanonical(string text, string origin)
    {
        var values = new ConfigValues();
        int line = 0;
        foreach (var raw in text.Split('\n'))
        {
            line++;
            if (raw.Length == 0 || raw[0] == '#') continue;
            int eq = raw.IndexOf('=');
            if (eq <= 0) throw new ConfigException($"{origin}:{line}: expected key=value, got '{raw}'");
            string value = raw[(eq + 1)..];
            if (value.Length >= 2 && value[0] == '"' && value[^1] == '"') value = value[1..^1];
            values.Set(raw[..eq], value, $"{origin}:{line}");
        }
        return values;
    }

    /// <summary>The canonical text plus the keys that do not change the numbers (threads, checkpoints).</summary>
    public string Full()
    {
        var sb = new StringBuilder(Canonical()).Append("# not part of the run id\n");
        foreach (var k in ConfigSchema.Keys.Where(k => !k.InRunId)) sb.Append(k.Key).Append('=').Append(Get(k.Key)).Append('\n');
        return sb.ToString();
    }

    /// <summary>Reads a TOML file. Syntax errors, unknown keys and wrong types name the file and line.</summary>
    public static ConfigValues FromTomlFile(string path)
    {
        if (!File.Exists(path)) throw new ConfigException($"config file '{path}' does not exist");
        string text = File.ReadAllText(path);
        var values = new ConfigValues();
        values.MergeToml(text, path);
        return values;
    }

    public void MergeToml(string text, string path)
    {
        DocumentSyntax doc;
        try { doc = Tomlyn.Parsing.SyntaxParser.Parse(text, path); }
        catch (Exception ex) when (ex is ArgumentException or InvalidOperationException or FormatException or OverflowException)
        {
            // The parser throws on a few malformed inputs (e.g. escapes of invalid code points) instead of reporting them.
            throw new ConfigException($"{path}: not valid TOML ({ex.Message.Split('\n')[0]})");
        }
        if (doc.HasErrors)
        {
            var first = doc.Diagnostics.First(d => d.Kind == DiagnosticMessageKind.Error);
            throw new ConfigException($"{Where(path, first.Span)}: {first.Message}");
        }
        foreach (var kv in doc.KeyValues)
            throw new ConfigException($"{Where(path, kv.Span)}: key '{KeyText(kv.Key)}' must sit in a section ({string.Join(", ", ConfigSchema.Sections.Select(s => $"[{s}]"))})");
        foreach (var table in doc.Tables)
        {
            string section = KeyText(table.Name);
            if (table is TableArraySyntax)
                throw new ConfigException($"{Where(path, table.Span)}: [[{section}]] arrays of tables are not part of a run config");
            if (!ConfigSchema.Sections.Contains(section) && section is not ("sweep" or "tune"))
                throw new ConfigException($"{Where(path, table.Span)}: unknown section [{section}]{Suggest.DidYouMean(section, ConfigSchema.Sections)}");
            foreach (var kv in table.Items)
            {
                string key = $"{section}.{KeyText(kv.Key)}";
                string origin = Where(path, kv.Span);
                if (section == "sweep") { SweepEntries.Add((KeyText(kv.Key), ToObject(kv.Value, origin), origin)); continue; }
                if (section == "tune") { TuneEntries.Add((KeyText(kv.Key), ToObject(kv.Value, origin), origin)); continue; }
                Set(key, ToObject(kv.Value, origin), origin);
            }
        }
    }

    /// <summary>Entries of a [sweep] section, if any: grid axes for 'reslab sweep'.</summary>
    public List<(string Key, object Value, string Origin)> SweepEntries { get; } = [];

    /// <summary>Entries of a [tune] section, if any: axes every arm of the sweep is trained at, each arm then judged at its best value.</summary>
    public List<(string Key, object Value, string Origin)> TuneEntries { get; } = [];

    static string Where(string path, SourceSpan span) => $"{path}:{span.Start.Line + 1}:{span.Start.Column + 1}";

    static string KeyText(KeySyntax? key)
    {
        if (key is null) return "";
        var parts = new List<string> { BareOrString(key.Key) };
        foreach (var dot in key.DotKeys) parts.Add(BareOrString(dot.Key));
        return string.Join('.', parts);
    }

    static string BareOrString(BareKeyOrStringValueSyntax? k) => k switch
    {
        BareKeySyntax b => b.Key?.Text ?? "",
        StringValueSyntax s => s.Value ?? "",
        _ => "",
    };

    static object ToObject(ValueSyntax? value, string origin) => value switch
    {
        IntegerValueSyntax i => i.Value,
        FloatValueSyntax f => f.Value,
        BooleanValueSyntax b => b.Value,
        StringValueSyntax s => s.Value ?? "",
        ArraySyntax a => a.Items.Select(item => ToObject(item.Value, origin)).ToList(),
        _ => throw new ConfigException($"{origin}: unsupported value (use a number, a string, true/false or an array)"),
    };
}
