using System.Globalization;
using ResidualLab.Config;
using ResidualLab.Results.Store;

namespace ResidualLab.Reports;

/// <summary>One finished run with everything recorded for it.</summary>
/// <param name="Setting">The varying keys other than the scheme's, e.g. "max_iters=600 init=\"pytorch\"".</param>
/// <param name="Tuned">The values of the [tune] keys, e.g. "lr=0.001" (empty without tuning).</param>
/// <param name="Facts">What the run's model as built stated (<see cref="Training.RunFact"/>), by name.</param>
internal sealed record RunData(RunRecord Run, string Group, string Setting,
    IReadOnlyList<StepRow> Steps, IReadOnlyList<EvalRow> Evals, IReadOnlyList<DiagnosticRow> Diagnostics, string Tuned = "",
    IReadOnlyDictionary<string, double>? Facts = null)
{
    /// <summary>The fact <paramref name="name"/> the run stated; NaN when it stated none.</summary>
    public double Fact(string name) => Facts is not null && Facts.TryGetValue(name, out double v) ? v : double.NaN;

    /// <summary>The run's canonical config as key -> value text.</summary>
    public IReadOnlyDictionary<string, string> Config => StudyData.ParseCanonical(Run.Config);

    public bool Done => Run.Status == RunState.Done;
    public bool Diverged => Run.Status == RunState.Diverged;
    public int Depth => Run.Depth;
}

/// <summary>
/// The finished runs of a results folder, grouped for comparison. A group is a connection scheme with its
/// options, plus any other config key that differs between runs (e.g. "pre-norm lr=0.003"); depth and seed
/// are the axes within a group, and so are the tuned keys (a [tune] section), which stay out of the group.
/// Runs that are not finished (running, failed, interrupted) are only counted.
/// </summary>
internal sealed record StudyData(IReadOnlyList<RunData> Runs, IReadOnlyList<string> Groups, IReadOnlyList<int> Depths,
    int Unfinished, IReadOnlyList<RunEnvironment> Environments)
{
    /// <summary>The keys that are axes within a group, not groups: the scheme, every family's depth and the seed.</summary>
    static readonly string[] Axes = ["connection.name", "train.seed", .. Families.ModelFamilies.All.Select(f => f.DepthKey).Distinct()];

    /// <param name="tuned">The [tune] keys of the folder's sweep: kept out of the groups, recorded per run.</param>
    public static StudyData Load(ResultsStore store, IReadOnlyList<string>? tuned = null)
    {
        if (store.DataConflict() is { } conflict) throw new ConfigException(conflict);
        tuned ??= [];
        var all = store.Runs();
        var finished = all.Where(r => RunState.IsFinal(r.Status)).ToList();
        var configs = finished.ToDictionary(r => r.RunId, r => ParseCanonical(r.Config));
        var varying = configs.Values.SelectMany(c => c.Keys).Distinct()
            .Where(k => !Axes.Contains(k) && !tuned.Contains(k) && configs.Values.Select(c => c.GetValueOrDefault(k, "")).Distinct().Count() > 1)
            .Order(StringComparer.Ordinal).ToList();
        var runs = finished.Select(r =>
        {
            var c = configs[r.RunId];
            string options = string.Join(" ", varying.Where(k => k.StartsWith("connection.", StringComparison.Ordinal)).Select(k => Show(k, c)));
            string setting = string.Join(" ", varying.Where(k => !k.StartsWith("connection.", StringComparison.Ordinal)).Select(k => Show(k, c)));
            string group = string.Join(" ", new[] { r.Connection, options, setting }.Where(s => s.Length > 0));
            string values = string.Join(" ", tuned.Select(k => Show(k, c)));
            return new RunData(r, group, setting, store.Steps(r.RunId), store.Evals(r.RunId), store.Diagnostics(r.RunId), values, store.Facts(r.RunId));
        }).ToList();
        var groups = runs.GroupBy(r => r.Group).OrderBy(g => g.Min(r => r.Run.StartedAt)).Select(g => g.Key).ToList(); // sweep order
        var environments = finished.Select(r => store.EnvironmentOf(r.RunId)).OfType<RunEnvironment>().Distinct().ToList();
        return new StudyData(runs, groups, runs.Select(r => r.Depth).Distinct().Order().ToList(), all.Count - finished.Count, environments);
    }

    public IEnumerable<RunData> Of(string group) => Runs.Where(r => r.Group == group);

    public IEnumerable<RunData> Of(string group, int depth) => Runs.Where(r => r.Group == group && r.Depth == depth);

    /// <summary>The group a group is compared with: the baseline scheme under the same setting, if recorded.</summary>
    public string? BaselineOf(string group, string baselineScheme)
    {
        var run = Of(group).First();
        return Runs.FirstOrDefault(r => r.Run.Connection == baselineScheme && r.Setting == run.Setting
                                        && r.Group == string.Join(" ", new[] { baselineScheme, r.Setting }.Where(s => s.Length > 0)))?.Group;
    }

    /// <summary>
    /// Final test losses of a group's done runs at a depth: what every comparison reports. Selection
    /// (learning rate) reads validation losses only; runs recorded before the test split have none and are left out.
    /// </summary>
    public IReadOnlyList<double> FinalLosses(string group, int depth) =>
        Of(group, depth).Where(r => r.Done && r.Run.TestLoss is not null).Select(r => r.Run.TestLoss!.Value).ToList();

    /// <summary>"short_key=value"; a key left out of the canonical text at its default (model.init) shows the default.</summary>
    static string Show(string key, IReadOnlyDictionary<string, string> config) =>
        $"{key[(key.IndexOf('.') + 1)..]}={(config.GetValueOrDefault(key) ?? Convert.ToString(ConfigSchema.Find(key)?.Default, CultureInfo.InvariantCulture) ?? "default").Trim('"')}";

    /// <summary>The canonical config text ("key=value" lines) as a dictionary.</summary>
    public static IReadOnlyDictionary<string, string> ParseCanonical(string canonical) =>
        canonical.Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(line => line.Split('=', 2))
            .Where(parts => parts.Length == 2)
            .ToDictionary(parts => parts[0], parts => parts[1], StringComparer.Ordinal);

    internal static string F(double x, string format = "0.0000") =>
        double.IsFinite(x) ? x.ToString(format, CultureInfo.InvariantCulture) : "-";
}
