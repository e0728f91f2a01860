using ResidualLab.Diagnostics;
using ResidualLab.Reports;
using ResidualLab.Results.Store;

namespace ResidualLab.Tests.Reports;

public class DiagnosticPlotsTests
{
    static int _ids;

    static RunData Run(string scheme, params DiagnosticRow[] diagnostics)
    {
        var record = new RunRecord($"d{Interlocked.Increment(ref _ids)}", $"{scheme} L2 s1", "gpt", scheme, 2, 1, "", RunState.Done, null,
            DateTimeOffset.UnixEpoch, DateTimeOffset.UnixEpoch, "host", 1, 20, 100, 10, 1000, 1 << 20, 2.5, 2.5)
        { TestLoss = 2.5 };
        return new RunData(record, scheme, "", [], [new EvalRow(20, 2.5, 2.5, 2.5)], diagnostics);
    }

    static DiagnosticRow[] PerBlock(int step, string name, params double[] values) =>
        values.Select((v, i) => new DiagnosticRow(step, name, i, v)).ToArray();

    [Fact]
    public void The_report_shows_the_stream_and_lens_figures_side_by_side_only_where_runs_have_readings()
    {
        string[] lenses = [LayerProbes.LogitLens, TunedLens.Name];
        var preNorm = Run("pre-norm", [.. PerBlock(20, LayerProbes.LogitLens, 3.1, 2.5), .. PerBlock(20, TunedLens.Name, 2.7, 2.5),
            .. PerBlock(20, DirectLogitAttribution.RecordName, 0.1, 0.4, 0.3, 0.2, 0.5)]);
        var mhc = Run("mhc", [.. PerBlock(20, LayerProbes.LogitLens, 3.0, 2.4), .. PerBlock(20, TunedLens.Name, 2.6, 2.4),
            .. PerBlock(10, "stream_cosine", 1.0, 1.0), .. PerBlock(20, "stream_cosine", 0.9, 0.8),
            .. PerBlock(10, "h_res_entropy", 1.38, 1.38), .. PerBlock(20, "h_res_entropy", 1.2, 1.0),
            .. PerBlock(10, "h_res_grad_ratio", 1e-5, 1e-5), .. PerBlock(20, "h_res_grad_ratio", 1e-3, 1e-3)]);
        var data = new StudyData([preNorm, mhc], ["pre-norm", "mhc"], [2], 0, []);

        var figures = DiagnosticPlots.All(data).ToDictionary(f => f.Title);

        foreach (var title in new[] { "Logit lens, 2 layers", "Tuned lens, 2 layers", "Direct logit attribution, 2 layers",
                     "Stream similarity by depth, 2 layers", "H_res entropy over training, 2 layers", "Gradient reaching H_res over training, 2 layers" })
        {
            Assert.True(figures.ContainsKey(title), $"missing figure '{title}'; have: {string.Join(", ", figures.Keys)}");
            Assert.Equal([0x89, (byte)'P', (byte)'N', (byte)'G'], figures[title].Png.Take(4));
        }
        // No run was lesioned or read for gradients at resid_pre: those figures are left out, not drawn empty.
        Assert.DoesNotContain("Lesion curve, 2 layers", figures.Keys);
        Assert.DoesNotContain("Gradient norm at resid_pre, 2 layers", figures.Keys);
    }
}
