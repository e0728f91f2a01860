using System.Globalization;
using System.Text;
using ResidualLab.Config;
using ResidualLab.Training;

namespace ResidualLab.Experiments;

/// <summary>One cell of the with/without-residual grid.</summary>
internal sealed record AblationRun(RunConfig Config, TrainResult Result);

/// <summary>One row of the final table: a depth, its two arms over seeds.</summary>
internal sealed record AblationRow(int Depth, Summary With, Summary Without)
{
    public double Difference => Without.Mean - With.Mean;
}

/// <summary>Mean and sample standard deviation of a handful of numbers.</summary>
internal sealed record Summary(IReadOnlyList<double> Values)
{
    public double Mean => Values.Count == 0 ? double.NaN : Values.Average();
    public double Std => Values.Count < 2 ? 0 : Math.Sqrt(Values.Sum(v => (v - Mean) * (v - Mean)) / (Values.Count - 1));
    public string Show() => Values.Count < 2
        ? Mean.ToString("0.0000", CultureInfo.InvariantCulture)
        : $"{Mean.ToString("0.0000", CultureInfo.InvariantCulture)} ± {Std.ToString("0.0000", CultureInfo.InvariantCulture)}";
}

/// <summary>
/// The seed experiment: the same Transformer trained with the residual (pre-norm) and without it
/// (none: the sublayer keeps its norm, the stream is replaced), same seed, data and budget, at each depth.
/// </summary>
internal static class ResidualAblation
{
    public const string With = "pre-norm";
    public const string Without = "none";

    public static IReadOnlyList<RunConfig> Grid(ConfigValues baseConfig, IReadOnlyList<int> depths, IReadOnlyList<long> seeds)
    {
        var runs = new List<RunConfig>();
        foreach (int depth in depths)
            foreach (long seed in seeds)
                foreach (string scheme in new[] { With, Without })
                {
                    var v = baseConfig.Clone();
                    v.Set("model.n_layer", (long)depth, "demo grid");
                    v.Set("train.seed", seed, "demo grid");
                    v.Set("connection.name", scheme, "demo grid");
                    runs.Add(RunConfig.From(v));
                }
        return runs;
    }

    public static IReadOnlyList<AblationRow> Table(IEnumerable<AblationRun> runs) =>
        runs.Where(r => r.Result.FinalEval is not null)
            .GroupBy(r => r.Config.Model.Depth)
            .OrderBy(g => g.Key)
            .Select(g => new AblationRow(g.Key,
                new Summary(g.Where(r => r.Config.Connection.Name == With).Select(r => r.Result.FinalEval!.TestLoss).ToList()),
                new Summary(g.Where(r => r.Config.Connection.Name == Without).Select(r => r.Result.FinalEval!.TestLoss).ToList())))
            .ToList();

    public static string ToCsv(IEnumerable<AblationRow> rows)
    {
        var sb = new StringBuilder("depth,test_loss_with,test_loss_with_std,test_loss_without,test_loss_without_std,difference,seeds\n");
        foreach (var r in rows)
            sb.AppendLine(string.Join(',', r.Depth, F(r.With.Mean), F(r.With.Std), F(r.Without.Mean), F(r.Without.Std), F(r.Difference), r.With.Values.Count));
        return sb.ToString();
    }

    static string F(double x) => x.ToString("0.0000", CultureInfo.InvariantCulture);
}
