using System.Globalization;
using ResidualLab.Config;
using ResidualLab.Data;
using ResidualLab.Reports;

namespace ResidualLab.Experiments;

/// <summary>
/// The necessity study's grid (preset <c>configs/necessity.toml</c>): is the residual necessary, or one of several ways to keep
/// the signal alive? The residual (<see cref="Residual"/>) against its naive removal (<c>none</c>: the same block with the
/// skip deleted) and the methods built to train deep Transformers with no shortcut at all (<see cref="ShortcutFree"/>), with
/// SAS, which removes the attention's skip but keeps the MLP's, reported apart; each arm at its own learning rate from a grid
/// of the preset (chosen on the first seed, <see cref="TunedSweep"/>), its initialisation the one its method prescribes, three seeds, a short budget and one five times longer,
/// with stream probes at init and on the last step. The default size fits 2 CPU cores; <see cref="Full"/> gives the seed
/// preset's (configs/seed-1layer.toml: d_model 128, batch 32, 600 and 3000 steps).
/// </summary>
internal static class NecessityStudy
{
    public const string Preset = "necessity";

    /// <summary>How much longer the long budget is than the short one.</summary>
    public const int LongBudgetFactor = 5;

    /// <summary>Evaluations per short budget: the validation curve steps to match are read from.</summary>
    public const int EvaluationsPerShortBudget = 5;

    /// <summary>The residual arm every other is judged against.</summary>
    public const string Residual = "pre-norm";

    /// <summary>The naive removal: the residual's block with <c>x +</c> deleted.</summary>
    public const string NaiveRemoval = "none";

    /// <summary>Methods that train deep Transformers with no skip at all (no connection around any sublayer).</summary>
    public static IReadOnlyList<string> ShortcutFree { get; } = ["value-skipinit", "e-spa", "u-spa", "sas-p"];

    /// <summary>What <paramref name="scheme"/> is in the study: any scheme not named here keeps a skip somewhere (SAS: the MLP's).</summary>
    public static NecessityRole RoleOf(string scheme) => scheme switch
    {
        Residual => NecessityRole.Residual,
        NaiveRemoval => NecessityRole.NaiveRemoval,
        _ when ShortcutFree.Contains(scheme) => NecessityRole.ShortcutFree,
        _ => NecessityRole.PartialShortcut,
    };

    /// <summary>The seed preset's model and batch, and budgets of 600 and 3000 steps.</summary>
    public static void Full(ConfigValues values)
    {
        foreach (var (key, value) in new (string, object)[]
                 {
                     ("model.d_model", 128L), ("model.n_head", 4L), ("model.block_size", 64L), ("train.batch_size", 32L),
                     ("train.warmup_iters", 50L), ("train.eval_batches", 20L),
                 })
            values.Set(key, value, "--full");
        Budgets(values, 600, "--full");
    }

    /// <summary>
    /// Replaces the budget axis with <paramref name="shortSteps"/> and <see cref="LongBudgetFactor"/> times as many; evaluates
    /// <see cref="EvaluationsPerShortBudget"/> times per short budget (the validation curve steps to match read, each evaluation
    /// about eval_batches x 3 forward passes) and probes the stream at init and on the last step only.
    /// </summary>
    public static void Budgets(ConfigValues values, int shortSteps, string origin)
    {
        if (shortSteps < 1) throw new ConfigException($"{origin}: the short budget must be at least 1 step, got {shortSteps}");
        ReplaceAxis(values, "train.max_iters", [(long)shortSteps, (long)shortSteps * LongBudgetFactor], origin);
        values.Set("train.eval_interval", (long)Math.Max(1, shortSteps / EvaluationsPerShortBudget), origin);
        values.Set("train.probe_interval", (long)shortSteps * LongBudgetFactor, origin);
    }

    /// <summary>Replaces the [sweep] axis (or, with <paramref name="tune"/>, the [tune] axis) <paramref name="key"/> with <paramref name="items"/>.</summary>
    public static void ReplaceAxis(ConfigValues values, string key, IReadOnlyList<object> items, string origin, bool tune = false)
    {
        var entries = tune ? values.TuneEntries : values.SweepEntries;
        var entry = (key, (object)items.ToList(), origin);
        int index = entries.FindIndex(e => e.Key == key);
        if (index >= 0) entries[index] = entry;
        else entries.Add(entry);
    }

    /// <summary>The arms of <paramref name="text"/> (comma-separated scheme names), which must include the residual.</summary>
    public static IReadOnlyList<object> Arms(string text, string option)
    {
        var names = Items(text, option, "pre-norm,none,e-spa");
        foreach (var name in names)
            if (Connections.ConnectionCatalog.Find(name) is null)
                throw new ConfigException($"{option} '{text}': unknown scheme '{name}'{Suggest.DidYouMean(name, Connections.ConnectionCatalog.Names)}; e.g. {option} pre-norm,none,e-spa");
        if (!names.Contains(Residual))
            throw new ConfigException($"{option} '{text}': the arms must include {Residual}, the residual every other arm is judged against");
        return names;
    }

    /// <summary>Positive integers of <paramref name="text"/> (comma-separated).</summary>
    public static IReadOnlyList<object> Integers(string text, string option, string example) =>
        Items(text, option, example).Select(part => long.TryParse(part, NumberStyles.Integer, CultureInfo.InvariantCulture, out long n) && n > 0
            ? (object)n
            : throw new ConfigException($"{option} '{text}': '{part}' is not a positive integer; e.g. {option} {example}")).ToList();

    /// <summary>Positive numbers of <paramref name="text"/> (comma-separated).</summary>
    public static IReadOnlyList<object> Numbers(string text, string option, string example) =>
        Items(text, option, example).Select(part => double.TryParse(part, NumberStyles.Float, CultureInfo.InvariantCulture, out double x) && x > 0
            ? (object)x
            : throw new ConfigException($"{option} '{text}': '{part}' is not a positive number; e.g. {option} {example}")).ToList();

    static List<string> Items(string text, string option, string example)
    {
        var parts = text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).ToList();
        if (parts.Count == 0) throw new ConfigException($"{option} is empty; e.g. {option} {example}");
        return parts;
    }

    /// <summary>
    /// Cross-entropy of the test split (validation when there is none) under the training split's
    /// token frequencies, add-one smoothed: the loss of a model that ignores the context (the "unigram plateau").
    /// </summary>
    public static double UnigramLoss(TokenCorpus corpus)
    {
        var counts = new double[corpus.VocabSize];
        foreach (int id in corpus.Train) counts[id]++;
        double total = corpus.Train.Length + corpus.VocabSize;
        var eval = corpus.Test.Length > 0 ? corpus.Test : corpus.Val;
        double sum = 0;
        foreach (int id in eval) sum -= Math.Log((counts[id] + 1) / total);
        return sum / eval.Length;
    }

    /// <summary>"98 runs (...): every learning rate at seed 1, the other seeds at each arm's choice".</summary>
    public static string Describe(SweepPlan plan, bool crossed) => crossed
        ? string.Create(CultureInfo.InvariantCulture, $"{plan.Runs.Count} runs ({SweepGrid.Describe(plan.Axes, plan.TunedKeys)}): every learning rate at every seed")
        : string.Create(CultureInfo.InvariantCulture,
            $"{TunedSweep.Projected(plan).Count} runs ({SweepGrid.Describe(plan.Axes, plan.TunedKeys)}): every learning rate at seed 1, the other seeds at each arm's choice");
}
