using System.Globalization;

namespace ResidualLab.Config;

/// <summary>One axis of a sweep: a config key and the values it takes, in file order.</summary>
internal sealed record SweepAxis(string Key, IReadOnlyList<object> Values, string Origin);

/// <summary>The runs of a sweep, in grid order (the last axis varies fastest), without duplicates.</summary>
/// <param name="Tuned">The keys of the [tune] section: every arm is trained at each of their values, and judged at its best.</param>
internal sealed record SweepPlan(IReadOnlyList<SweepAxis> Axes, IReadOnlyList<RunConfig> Runs, IReadOnlyList<string>? Tuned = null)
{
    public IReadOnlyList<string> TunedKeys => Tuned ?? [];
}

/// <summary>
/// Expands a config with a [sweep] section into the grid of runs: each entry is a config key written
/// with its section (<c>"connection.name" = ["pre-norm", "none"]</c>) and an array of values (a single
/// value is an axis of one). Every cell is checked like any run config, so a bad value names its line.
/// A [tune] section adds axes the same way (<c>"train.lr" = [3e-4, 1e-3, 3e-3]</c>): every arm (every cell
/// of the other axes but the seed) is trained at each value, and reports judge each arm at the value with
/// its lowest mean validation loss.
/// </summary>
internal static class SweepGrid
{
    public static IReadOnlyList<SweepAxis> Axes(ConfigValues values) => Parse(values.SweepEntries, "sweep", minValues: 1);

    /// <summary>The axes of the [tune] section: known keys, not also [sweep] axes, at least two values each.</summary>
    public static IReadOnlyList<SweepAxis> TuneAxes(ConfigValues values)
    {
        var tune = Parse(values.TuneEntries, "tune", minValues: 2);
        foreach (var axis in tune)
        {
            if (values.SweepEntries.Any(e => e.Key == axis.Key))
                throw new ConfigException($"{axis.Origin}: '{axis.Key}' is both a [sweep] and a [tune] key; keep it in one section ([tune]: each arm at its best value)");
            if (axis.Key is "train.seed" or "connection.name" or "model.n_layer")
                throw new ConfigException($"{axis.Origin}: '{axis.Key}' defines the arms compared; it belongs in [sweep], not [tune]");
        }
        return tune;
    }

    static List<SweepAxis> Parse(List<(string Key, object Value, string Origin)> entries, string section, int minValues)
    {
        var axes = new List<SweepAxis>();
        foreach (var (key, value, origin) in entries)
        {
            if (!key.Contains('.'))
                throw new ConfigException($"{origin}: {section} key '{key}' needs its section in quotes, e.g. \"model.{key}\" = [2, 4]{Suggest.DidYouMean(key, ConfigSchema.Keys.Select(k => k.Key.Split('.')[1]))}");
            if (ConfigSchema.Find(key) is null && !ConfigSchema.IsConnectionOption(key))
                throw new ConfigException($"{origin}: unknown {section} key '{key}'{Suggest.DidYouMean(key, ConfigSchema.Keys.Select(k => k.Key))}");
            if (axes.Any(a => a.Key == key))
                throw new ConfigException($"{origin}: {section} key '{key}' appears twice; list all its values in one array");
            var list = value is List<object> items ? items : [value];
            if (list.Count < minValues)
                throw new ConfigException(minValues == 1
                    ? $"{origin}: {section} key '{key}' has no values; give at least one, e.g. [1, 2]"
                    : $"{origin}: {section} key '{key}' needs at least {minValues} values to choose from, e.g. [3e-4, 1e-3, 3e-3]");
            if (list.Any(v => v is List<object>))
                throw new ConfigException($"{origin}: {section} key '{key}' must be an array of plain values, not of arrays");
            axes.Add(new SweepAxis(key, list, origin));
        }
        return axes;
    }

    public static SweepPlan Expand(ConfigValues values)
    {
        var tune = TuneAxes(values);
        var axes = Axes(values).Concat(tune).ToList();
        var runs = new List<RunConfig>();
        var seen = new HashSet<string>();
        foreach (var cell in Cells(axes, 0, []))
        {
            var v = values.Clone();
            foreach (var (axis, value) in cell) v.Set(axis.Key, value, axis.Origin);
            var config = RunConfig.From(v);
            if (seen.Add(config.RunId)) runs.Add(config);
        }
        return new SweepPlan(axes, runs, tune.Select(a => a.Key).ToList());
    }

    static IEnumerable<List<(SweepAxis Axis, object Value)>> Cells(IReadOnlyList<SweepAxis> axes, int index, List<(SweepAxis, object)> prefix)
    {
        if (index == axes.Count)
        {
            yield return prefix;
            yield break;
        }
        foreach (var value in axes[index].Values)
            foreach (var cell in Cells(axes, index + 1, [.. prefix, (axes[index], value)]))
                yield return cell;
    }

    /// <summary>"connection.name (3) x model.n_layer (2) x train.seed (3)".</summary>
    public static string Describe(IReadOnlyList<SweepAxis> axes, IReadOnlyList<string>? tuned = null) => axes.Count == 0
        ? "no [sweep] axes: one run"
        : string.Join(" x ", axes.Select(a => $"{a.Key} ({a.Values.Count.ToString(CultureInfo.InvariantCulture)}{(tuned?.Contains(a.Key) == true ? ", tuned" : "")})"));
}
