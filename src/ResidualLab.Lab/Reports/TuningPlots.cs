using System.Globalization;

namespace ResidualLab.Reports;

/// <summary>Final validation loss against the tuned value, per scheme and depth, with the spread over seeds.</summary>
internal static class TuningPlots
{
    public static IReadOnlyList<Figure> All(IReadOnlyList<ArmTuning> arms)
    {
        var figures = new List<Figure>();
        var groups = arms.Select(a => a.Group).Distinct().ToList();
        foreach (int depth in arms.Select(a => a.Depth).Distinct().Order())
        {
            string title = $"Validation loss vs tuned value, {ReportPlots.Layers(depth)}";
            var atDepth = arms.Where(a => a.Depth == depth).ToList();
            var values = atDepth.SelectMany(a => a.Values.Select(v => v.Value)).Distinct().ToList();
            if (values.Count < 2) continue; // one value: no curve to draw
            // A single numeric key (a learning rate) is drawn on a log axis; anything else by position.
            bool numeric = values.All(v => Number(v) is > 0);
            var order = numeric ? values.OrderBy(v => Number(v)).ToList() : values;
            double X(string v) => numeric ? Math.Log10(Number(v)!.Value) : order.IndexOf(v);
            var plot = ReportPlots.NewPlot(title, numeric ? $"{Key(values[0])} (log scale)" : "tuned value", "final validation loss");
            foreach (var arm in atDepth)
            {
                var points = arm.Values.Where(v => v.Val.Count > 0 && double.IsFinite(v.Val.Mean)).ToList();
                if (points.Count == 0) continue;
                var color = new ScottPlot.Palettes.Category10().GetColor(groups.IndexOf(arm.Group));
                double[] xs = points.Select(p => X(p.Value)).ToArray();
                double[] ys = points.Select(p => p.Val.Mean).ToArray();
                var line = plot.Add.Scatter(xs, ys);
                line.Color = color;
                line.LineWidth = 2;
                line.MarkerSize = 8;
                line.LegendText = arm.Group;
                var bars = plot.Add.ErrorBar(xs, ys, points.Select(p => double.IsFinite(p.Val.Std) ? p.Val.Std : 0).ToArray());
                bars.Color = color;
            }
            plot.Axes.Bottom.SetTicks(order.Select(X).ToArray(), order.Select(v => v[(v.IndexOf('=') + 1)..]).ToArray());
            plot.Axes.Margins(0.1, 0.15);
            figures.Add(ReportPlots.Render(plot, title,
                "Mean final validation loss over seeds at each tuned value (error bars: ± one standard deviation across seeds); diverged values are left out. Each scheme is compared at the value where its mean is lowest."));
        }
        return figures;
    }

    static string Key(string value) => value.Contains('=') ? value[..value.IndexOf('=')] : "value";

    static double? Number(string value) =>
        !value.Contains(' ') && double.TryParse(value[(value.IndexOf('=') + 1)..], NumberStyles.Float, CultureInfo.InvariantCulture, out double x) ? x : null;
}
