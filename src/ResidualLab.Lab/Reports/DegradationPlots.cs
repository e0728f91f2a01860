using ResidualLab.Diagnostics;
using ResidualLab.Experiments;
using ScottPlot;

namespace ResidualLab.Reports;

/// <summary>
/// The degradation study's figures: for each family and depth, the gradient norm of every weight layer at
/// initialisation (step 0, the first training batch, before any update), one line per arm, so the reader sees what
/// each method changes in the backward signal of the same net. Drawn only for runs of the study's arms.
/// </summary>
internal static class DegradationPlots
{
    public static IReadOnlyList<Figure> All(StudyData data)
    {
        var byArm = data.Runs.Select(r => (Run: r, Arm: DegradationArm.Of(r.Run.Config))).Where(x => x.Arm is not null).ToList();
        var figures = new List<Figure>();
        foreach (var family in byArm.GroupBy(x => (x.Arm!.Kind, x.Run.Depth)).OrderBy(g => g.Key.Kind, StringComparer.Ordinal).ThenBy(g => g.Key.Depth))
        {
            var (kind, depth) = family.Key;
            string title = $"Gradient norm by layer at initialisation, {kind.ToUpperInvariant()} depth {depth}";
            var plot = ReportPlots.NewPlot(title, "weight layer (0 = the input layer, last = the classifier)", "log10 ||dL/dW|| at step 0");
            var palette = new ScottPlot.Palettes.Category10();
            bool any = false;
            foreach (var arm in family.GroupBy(x => x.Arm!).OrderBy(g => DegradationArm.All.ToList().IndexOf(g.Key)))
            {
                // Runs that differ only in learning rate start identically; the mean of log10 is over seeds in effect.
                var layers = arm.SelectMany(x => x.Run.Diagnostics).Where(d => d.Name == GradientNormProbe.Name && d.Step == 0 && d.Value > 0)
                    .GroupBy(d => d.Index).OrderBy(g => g.Key).ToList();
                if (layers.Count == 0) continue;
                any = true;
                var line = plot.Add.Scatter(layers.Select(g => (double)g.Key).ToArray(), layers.Select(g => g.Average(d => Math.Log10(d.Value))).ToArray());
                line.Color = palette.GetColor(DegradationArm.All.ToList().IndexOf(arm.Key));
                line.LineWidth = 2;
                line.MarkerSize = 5;
                line.LegendText = arm.Key.Name;
            }
            if (!any) continue;
            plot.Axes.Margins(0.05, 0.15);
            figures.Add(ReportPlots.Render(plot, title,
                "L2 norm of each weight layer's gradient (convolution or linear weight; RepVGG: its blocks' 3x3 kernels) on the first training batch, before any update, mean of log10 over the runs. "
                + "A flat line passes the backward signal through depth unchanged; a slope is gradients growing (down to the right) or vanishing towards the input."));
        }
        return figures;
    }
}
