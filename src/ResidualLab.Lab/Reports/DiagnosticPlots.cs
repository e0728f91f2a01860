using ResidualLab.Diagnostics;
using ScottPlot;

namespace ResidualLab.Reports;

/// <summary>
/// Figures of the stream probes, one line per scheme on shared axes so the schemes read side by side:
/// the stream's RMS along depth (resid_pre of block 0, then resid_mid and resid_post of every block), the
/// gradient norm at resid_pre by block, the Amax gain of the H_res product of multi-stream schemes, the
/// lesion and swap curves, the logit-lens and tuned-lens curves, direct logit attribution, the token cosine along depth
/// at init and after training (rank collapse), the streams'
/// similarity by depth, H_res's entropy and the gradient reaching it over training, and a layer x step heatmap of the stream RMS per scheme.
/// Each curve is the mean over seeds of the run's last reading of that probe. Only probes that were recorded appear.
/// </summary>
internal static class DiagnosticPlots
{
    public static IReadOnlyList<Figure> All(StudyData data)
    {
        var figures = new List<Figure>();
        foreach (int depth in data.Depths)
        {
            string layers = depth == 1 ? "1 layer" : $"{depth} layers";
            var f = new List<Figure?>
            {
                Curves(data, depth, $"Stream RMS along depth, {layers}", "position (0 = resid_pre of block 0; 2i+1 resid_mid, 2i+2 resid_post of block i)",
                    "log10 RMS of the stream", StreamRms, log: true,
                    "RMS over every element of the residual stream (all streams of multi-stream schemes) at the last probe step."),
                Curves(data, depth, $"Gradient norm at resid_pre, {layers}", "block", "log10 ||dL/d resid_pre||",
                    r => Last(r, "resid_pre_grad_norm"), log: true,
                    "L2 norm of the loss gradient with respect to the stream entering each block, at the last probe step (the parameter-gradient view is above)."),
                Curves(data, depth, $"Update ratio by sublayer, {layers}", "sublayer (2i attention, 2i+1 MLP of block i)", "log10 ||h_out - h_in|| / ||h_in||",
                    r => Last(r, "update_ratio"), log: true,
                    "How much each sublayer changes the stream, relative to the stream, at the last probe step."),
                Curves(data, depth, $"Amax gain of the H_res product, {layers}", "sublayer k (product of H_res over sublayers 0..k)", "log10 gain",
                    r => Last(r, "h_res_gain_fwd"), log: true,
                    "Forward Amax gain (largest absolute row sum, largest over tokens) of the composite residual mixing of multi-stream schemes at the last probe step; 0 = gain 1."),
                Curves(data, depth, $"Lesion curve, {layers}", "block replaced by the identity", "val loss",
                    r => Last(r, LayerProbes.Lesion), log: false,
                    "Val loss with one block removed (identity on the stream), from 'reslab probe --lesion'; the runs' intact val loss is in the runs table."),
                Curves(data, depth, $"Logit lens, {layers}", "block whose resid_post is decoded", "val loss",
                    r => Last(r, LayerProbes.LogitLens), log: false,
                    "Val loss decoding each block's resid_post through the final norm and head ('reslab probe --logit-lens'); the last block is the model's own val loss."),
                Curves(data, depth, $"Tuned lens, {layers}", "block whose resid_post is decoded", "val loss",
                    r => Last(r, TunedLens.Name), log: false,
                    "Val loss of each block's tuned lens (an affine translator trained toward the final output, 'reslab probe --tuned-lens'), on the logit lens's axes above: the gap is what a linear change of basis recovers."),
                Curves(data, depth, $"Direct logit attribution, {layers}", "component (0 embedding, 2i+1 attention, 2i+2 MLP of block i)", "logit of the correct next token",
                    r => Last(r, DirectLogitAttribution.RecordName), log: false,
                    "Each component's direct contribution to the correct next token's logit through the frozen final norm, mean over the first val batch ('reslab probe --dla')."),
                Curves(data, depth, $"Rank collapse along depth at init (1 - token cosine), {layers}", TokenPositions, "log10 (1 - mean cosine between distinct tokens)",
                    r => DistanceFromCollapse(r, first: true), log: true,
                    "Rank collapse at initialisation: one minus the mean cosine between the representations of a sequence's distinct tokens, at every position of the stream (step 0), on a log scale. Falling with depth: the tokens converge to one vector (rank collapse), and attention has less and less to tell apart; flat: the signal is kept."),
                Curves(data, depth, $"Rank collapse along depth after training (1 - token cosine), {layers}", TokenPositions, "log10 (1 - mean cosine between distinct tokens)",
                    r => DistanceFromCollapse(r, first: false), log: true,
                    "The same at the last probe step (the trained model)."),
                Curves(data, depth, $"Stream similarity by depth, {layers}", "block (at resid_post)", "mean pairwise cosine of the streams",
                    r => Last(r, "stream_cosine"), log: false,
                    "Multi-stream schemes at the last probe step: 1 = the streams are copies of one another (the scheme computes one stream n times)."),
                Curves(data, depth, $"H_res entropy over training, {layers}", "step", "mean row entropy of H_res (nats)",
                    r => BySteps(r, "h_res_entropy"), log: false,
                    "Mean over sublayers, rows and tokens at each probe step; ln n for the uniform mixing J/n, 0 for a permutation."),
                Curves(data, depth, $"Gradient reaching H_res over training, {layers}", "step", "log10 ||grad of H_res's parameters|| / ||grad||",
                    r => BySteps(r, "h_res_grad_ratio"), log: true,
                    "Mean over sublayers at each probe step of the gradient norm of the parameters that set H_res, over the whole model's gradient norm (before clipping)."),
            };
            figures.AddRange(f.OfType<Figure>());
            foreach (var group in data.Groups)
                if (RmsHeatmap(data, group, depth, layers) is { } heatmap) figures.Add(heatmap);
        }
        return figures;
    }

    /// <summary>The x axis of readings indexed by stream position.</summary>
    const string TokenPositions = "position (0 = resid_pre of block 0; 2i+1 resid_mid, 2i+2 resid_post of block i)";

    /// <summary>1 - token cosine at the run's first or last probe step, by position.</summary>
    static IReadOnlyList<(int Index, double Value)> DistanceFromCollapse(RunData run, bool first) =>
        At(run, RankCollapse.Reading, first).Select(p => (p.Index, 1 - p.Value)).ToList();

    /// <summary>The run's readings of <paramref name="name"/> at its last step with one, by index.</summary>
    static IReadOnlyList<(int Index, double Value)> Last(RunData run, string name) => At(run, name, first: false);

    /// <summary>The run's readings of <paramref name="name"/> at its first (or last) step with one, by index.</summary>
    internal static IReadOnlyList<(int Index, double Value)> At(RunData run, string name, bool first)
    {
        var readings = run.Diagnostics.Where(d => d.Name == name).ToList();
        if (readings.Count == 0) return [];
        int step = first ? readings.Min(d => d.Step) : readings.Max(d => d.Step);
        return readings.Where(d => d.Step == step).OrderBy(d => d.Index).Select(d => (d.Index, d.Value)).ToList();
    }

    /// <summary>The run's readings of <paramref name="name"/> averaged over their indices, by step.</summary>
    static IReadOnlyList<(int Index, double Value)> BySteps(RunData run, string name) =>
        run.Diagnostics.Where(d => d.Name == name).GroupBy(d => d.Step).OrderBy(g => g.Key)
            .Select(g => (g.Key, g.Average(d => d.Value))).ToList();

    static IReadOnlyList<(int Index, double Value)> StreamRms(RunData run)
    {
        var pre = Last(run, "resid_pre_rms");
        var mid = Last(run, "resid_mid_rms");
        var post = Last(run, "resid_post_rms");
        if (pre.Count == 0) return [];
        return [(0, pre[0].Value), .. mid.Select(m => (2 * m.Index + 1, m.Value)), .. post.Select(p => (2 * p.Index + 2, p.Value))];
    }

    static Figure? Curves(StudyData data, int depth, string title, string x, string y,
        Func<RunData, IReadOnlyList<(int Index, double Value)>> read, bool log, string caption)
    {
        var plot = new Plot();
        plot.Title(title);
        plot.XLabel(x);
        plot.YLabel(y);
        bool any = false;
        var palette = new ScottPlot.Palettes.Category10();
        foreach (var group in data.Groups)
        {
            var points = data.Of(group, depth).SelectMany(read).Where(p => !log || p.Value > 0)
                .GroupBy(p => p.Index).OrderBy(g => g.Key).ToList();
            if (points.Count == 0) continue;
            any = true;
            var line = plot.Add.Scatter(points.Select(g => (double)g.Key).ToArray(),
                points.Select(g => log ? Math.Log10(g.Average(p => p.Value)) : g.Average(p => p.Value)).ToArray());
            line.Color = palette.GetColor(data.Groups.ToList().IndexOf(group));
            line.LineWidth = 2;
            line.MarkerSize = 6;
            line.LegendText = group;
        }
        if (!any) return null;
        plot.Axes.Margins(0.05, 0.15);
        plot.ShowLegend(Edge.Right);
        return new Figure(title, caption, plot.GetImageBytes(ReportPlots.Width, ReportPlots.Height, ImageFormat.Png));
    }

    /// <summary>log10 resid_post RMS by block (rows) and probe step (columns) for one scheme's first run at a depth.</summary>
    static Figure? RmsHeatmap(StudyData data, string group, int depth, string layers)
    {
        var run = data.Of(group, depth).FirstOrDefault(r => r.Diagnostics.Any(d => d.Name == "resid_post_rms"));
        if (run is null) return null;
        var readings = run.Diagnostics.Where(d => d.Name == "resid_post_rms" && d.Value > 0).ToList();
        var steps = readings.Select(d => d.Step).Distinct().Order().ToList();
        if (steps.Count < 2) return null;
        var cells = new double[depth, steps.Count];
        foreach (var d in readings) cells[depth - 1 - d.Index, steps.IndexOf(d.Step)] = Math.Log10(d.Value);
        var plot = new Plot();
        string title = $"Stream RMS by block and step, {group}, {layers}";
        plot.Title(title);
        plot.XLabel($"probe (steps {steps[0]} to {steps[^1]})");
        plot.YLabel("block (0 at the bottom)");
        var heatmap = plot.Add.Heatmap(cells);
        heatmap.Colormap = new ScottPlot.Colormaps.Viridis();
        plot.Add.ColorBar(heatmap).Label = "log10 RMS of resid_post";
        return new Figure(title, $"log10 RMS of each block's resid_post at every probe step of run {run.Run.RunId} ({group}).",
            plot.GetImageBytes(ReportPlots.Width, ReportPlots.Height, ImageFormat.Png));
    }
}
