using System.Globalization;
using ResidualLab.Config;
using ResidualLab.Data;

namespace ResidualLab.Experiments;

/// <summary>
/// The necessity study's grid (preset <c>configs/necessity.toml</c>): with vs without the residual at
/// depth 1, 2 and 6, two initialisations, three learning rates per arm, three seeds, a short budget and one
/// five times longer. The preset is small enough for 2 CPU cores; <see cref="Full"/> gives the seed
/// preset's size (configs/seed-1layer.toml: d_model 128, batch 32, 600 and 3000 steps).
/// </summary>
internal static class NecessityStudy
{
    public const string Preset = "necessity";

    /// <summary>How much longer the long budget is than the short one.</summary>
    public const int LongBudgetFactor = 5;

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

    /// <summary>Replaces the budget axis with <paramref name="shortSteps"/> and <see cref="LongBudgetFactor"/> times as many.</summary>
    public static void Budgets(ConfigValues values, int shortSteps, string origin)
    {
        if (shortSteps < 1) throw new ConfigException($"{origin}: the short budget must be at least 1 step, got {shortSteps}");
        int index = values.SweepEntries.FindIndex(e => e.Key == "train.max_iters");
        var entry = ("train.max_iters", (object)new List<object> { (long)shortSteps, (long)shortSteps * LongBudgetFactor }, origin);
        if (index >= 0) values.SweepEntries[index] = entry;
        else values.SweepEntries.Add(entry);
        // Evaluations every half of the short budget: each costs about eval_batches x 3 forward passes.
        values.Set("train.eval_interval", (long)Math.Max(1, shortSteps / 2), origin);
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

    public static string Describe(SweepPlan plan) =>
        string.Create(CultureInfo.InvariantCulture, $"{plan.Runs.Count} runs ({SweepGrid.Describe(plan.Axes, plan.TunedKeys)})");
}
