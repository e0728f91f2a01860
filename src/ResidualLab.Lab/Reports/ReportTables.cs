using System.Globalization;
using System.Text;

namespace ResidualLab.Reports;

/// <summary>One cell of the final-loss table: a group at a depth, over seeds, against the baseline at that depth.</summary>
internal sealed record FinalLossRow(string Group, int Depth, SampleSummary Loss, WelchTest? VersusBaseline, int Diverged, int Runs);

/// <summary>The report's tables and their CSV export (one file per table, invariant culture, '.' decimals).</summary>
internal static class ReportTables
{
    public static IReadOnlyList<FinalLossRow> FinalLoss(StudyData data, string baselineScheme) =>
        (from g in data.Groups
         from d in data.Depths
         let runs = data.Of(g, d).ToList()
         where runs.Count > 0
         let baseline = data.BaselineOf(g, baselineScheme)
         let losses = data.FinalLosses(g, d)
         select new FinalLossRow(g, d, Statistics.Summarise(losses),
             baseline is null || baseline == g ? null : Statistics.Welch(losses, data.FinalLosses(baseline, d)),
             runs.Count(r => r.Diverged), runs.Count)).ToList();

    public static string FinalLossCsv(IEnumerable<FinalLossRow> rows)
    {
        var sb = new StringBuilder("group,depth,runs,diverged,seeds_done,test_loss_mean,test_loss_std,ci95_low,ci95_high,diff_vs_baseline,diff_ci95_low,diff_ci95_high,welch_t,welch_df,p\n");
        foreach (var r in rows)
            sb.AppendLine(Csv(r.Group, r.Depth, r.Runs, r.Diverged, r.Loss.Count, r.Loss.Mean, r.Loss.Std, r.Loss.Low, r.Loss.High,
                r.VersusBaseline?.Difference, r.VersusBaseline?.Low, r.VersusBaseline?.High, r.VersusBaseline?.T,
                r.VersusBaseline?.DegreesOfFreedom, r.VersusBaseline?.P));
        return sb.ToString();
    }

    public static string ScorecardCsv(IEnumerable<ScorecardRow> rows)
    {
        var sb = new StringBuilder("group,baseline,compared_depth,test_loss_mean,diff_vs_baseline,diff_ci95_low,diff_ci95_high,p,significant,diverged,runs,divergence_rate,worst_grad_spike,slope_loss_vs_ln_depth,baseline_slope,throughput_ratio,throughput_p,memory_ratio,parameters,parameter_ratio,flops_per_step_ratio,equal_flops_budget,equal_flops_val_loss,equal_flops_baseline_val_loss,equal_flops_diff,equal_flops_ci95_low,equal_flops_ci95_high,equal_flops_p,equal_time_budget_s,equal_time_val_loss,equal_time_baseline_val_loss,equal_time_diff,equal_time_ci95_low,equal_time_ci95_high,equal_time_p,verdict\n");
        foreach (var r in rows)
            sb.AppendLine(Csv(r.Group, r.Baseline, r.ComparedDepth, r.Loss.Mean, r.Difference?.Difference, r.Difference?.Low,
                r.Difference?.High, r.Difference?.P, r.Difference?.Significant(), r.Diverged, r.Finished, r.DivergenceRate,
                r.WorstGradSpike, r.DepthSlope, r.BaselineDepthSlope, r.ThroughputRatio, r.ThroughputTest?.P, r.MemoryRatio, r.Parameters, r.ParameterRatio,
                r.FlopsRatio, r.EqualFlops?.Budget, r.EqualFlops?.Loss.Mean, r.EqualFlops?.BaselineLoss.Mean, r.EqualFlops?.Difference?.Difference,
                r.EqualFlops?.Difference?.Low, r.EqualFlops?.Difference?.High, r.EqualFlops?.Difference?.P,
                r.EqualTime?.Budget, r.EqualTime?.Loss.Mean, r.EqualTime?.BaselineLoss.Mean, r.EqualTime?.Difference?.Difference,
                r.EqualTime?.Difference?.Low, r.EqualTime?.Difference?.High, r.EqualTime?.Difference?.P, r.Verdict));
        return sb.ToString();
    }

    /// <summary>Every arm's tuned values: validation loss (what chose) and test loss (what is reported), over seeds.</summary>
    public static string TuningCsv(IEnumerable<ArmTuning> arms)
    {
        var sb = new StringBuilder("group,depth,value,runs,diverged,val_loss_mean,val_loss_std,test_loss_mean,test_loss_std,test_ci95_low,test_ci95_high,chosen,edge\n");
        foreach (var a in arms)
            foreach (var v in a.Values)
                sb.AppendLine(Csv(a.Group, a.Depth, v.Value, v.Runs, v.Diverged, v.Val.Mean, v.Val.Std, v.Test.Mean, v.Test.Std, v.Test.Low, v.Test.High,
                    v.Value == a.Best, v.Value == a.Best ? string.Join("; ", a.Edges) : ""));
        return sb.ToString();
    }

    public static string RunsCsv(StudyData data)
    {
        var sb = new StringBuilder("run_id,group,connection,depth,seed,status,steps,train_loss,val_loss,test_loss,parameters,mean_step_ms,items_per_s,item_unit,peak_rss_bytes,started_at,ended_at,error\n");
        foreach (var r in data.Runs.Select(x => (x.Group, x.Run)))
            sb.AppendLine(Csv(r.Run.RunId, r.Group, r.Run.Connection, r.Run.Depth, r.Run.Seed, r.Run.Status, r.Run.Steps, r.Run.TrainLoss,
                r.Run.ValLoss, r.Run.TestLoss, r.Run.Parameters, r.Run.MeanStepMs, r.Run.ItemsPerSecond, r.Run.ItemUnit, r.Run.PeakRssBytes,
                r.Run.StartedAt.ToString("O", CultureInfo.InvariantCulture), r.Run.EndedAt?.ToString("O", CultureInfo.InvariantCulture), r.Run.Error));
        return sb.ToString();
    }

    static string Csv(params object?[] values) => string.Join(',', values.Select(v => v switch
    {
        null => "",
        double d when !double.IsFinite(d) => "",
        double d => d.ToString("R", CultureInfo.InvariantCulture),
        bool b => b ? "true" : "false",
        string s when s.IndexOfAny([',', '"', '\n']) >= 0 => $"\"{s.Replace("\"", "\"\"")}\"",
        IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
        var o => o.ToString(),
    }));
}
