using ResidualLab.Diagnostics;
using ScottPlot;

namespace ResidualLab.Reports;

/// <summary>A rendered figure: its title, a caption and the PNG bytes.</summary>
internal sealed record Figure(string Title, string Caption, byte[] Png);

/// <summary>
/// The report's figures, drawn with ScottPlot from the study data: loss curves (mean and band over
/// seeds) per depth, final loss vs depth, gradient norm by layer, step time, memory and parameters.
/// Text is drawn with DejaVu Sans (Debian's fonts-dejavu-core); without a font ScottPlot draws no text.
/// </summary>
internal static class ReportPlots
{
    public const int Width = 960, Height = 420;

    static ReportPlots() => Fonts.Default = "DejaVu Sans";

    public static IReadOnlyList<Figure> All(StudyData data)
    {
        var figures = new List<Figure>();
        foreach (int depth in data.Depths) figures.Add(LossCurves(data, depth));
        if (data.Depths.Count > 1) figures.Add(LossVsDepth(data)); // one depth: nothing to draw against depth
        foreach (int depth in data.Depths.Where(d => data.Runs.Any(r => r.Depth == d && r.Diagnostics.Any(x => x.Name == GradientNormProbe.Name))))
            figures.Add(GradientNormByLayer(data, depth));
        figures.AddRange(DiagnosticPlots.All(data));
        if (data.Groups.Count > 1) // the bars compare schemes: one scheme has nothing to compare
        {
            figures.Add(Bars(data, "Step time", "mean milliseconds per training step", r => r.Run.MeanStepMs, "ms per step"));
            figures.Add(Bars(data, "Memory", "peak resident memory of the process while the run trained", r => r.Run.PeakRssBytes / 1048576.0, "peak RSS (MiB)"));
            figures.Add(Bars(data, "Parameters", "trainable parameters", r => r.Run.Parameters, "parameters"));
        }
        return figures;
    }

    static Color ColorOf(StudyData data, string group) => new ScottPlot.Palettes.Category10().GetColor(data.Groups.ToList().IndexOf(group));

    static Figure LossCurves(StudyData data, int depth)
    {
        var plot = NewPlot($"Training loss, {Layers(depth)}", "step", "training loss (moving average)");
        int window = Math.Max(1, data.Runs.Where(r => r.Depth == depth && r.Steps.Count > 0).Select(r => r.Steps.Count).DefaultIfEmpty(0).Min() / 40);
        foreach (var group in data.Groups)
        {
            var runs = data.Of(group, depth).Where(r => r.Steps.Count > 0).ToList();
            if (runs.Count == 0) continue;
            int length = runs.Min(r => r.Steps.Count);
            var curves = runs.Select(r => MovingAverage(r.Steps.Take(length).Select(s => s.Loss).ToArray(), window)).ToList();
            double[] xs = runs[0].Steps.Take(length).Select(s => (double)s.Step).ToArray();
            double[] mean = Enumerable.Range(0, length).Select(i => curves.Average(c => c[i])).ToArray();
            double[] std = Enumerable.Range(0, length).Select(i => Std(curves.Select(c => c[i]).ToList())).ToArray();
            var color = ColorOf(data, group);
            if (runs.Count > 1)
            {
                var band = plot.Add.FillY(xs, mean.Zip(std, (m, s) => m - s).ToArray(), mean.Zip(std, (m, s) => m + s).ToArray());
                band.FillColor = color.WithAlpha(0.25);
                band.LineWidth = 0;
            }
            var line = plot.Add.ScatterLine(xs, mean);
            line.Color = color;
            line.LineWidth = 2;
            line.LegendText = $"{group} (n={runs.Count})";
        }
        return Render(plot, $"Training loss, {Layers(depth)}", $"Mean over seeds of the training loss (moving average over {window} steps); band: ± one standard deviation across seeds.");
    }

    static Figure LossVsDepth(StudyData data)
    {
        var plot = NewPlot("Final test loss vs depth", "layers (log scale)", "final test loss");
        foreach (var group in data.Groups)
        {
            var points = data.Depths.Select(d => (Depth: d, Summary: Statistics.Summarise(data.FinalLosses(group, d))))
                .Where(p => p.Summary.Count > 0).ToList();
            if (points.Count == 0) continue;
            double[] xs = points.Select(p => Math.Log2(p.Depth)).ToArray();
            double[] ys = points.Select(p => p.Summary.Mean).ToArray();
            var color = ColorOf(data, group);
            var line = plot.Add.Scatter(xs, ys);
            line.Color = color;
            line.LineWidth = 2;
            line.MarkerSize = 8;
            line.LegendText = group;
            double[] errors = points.Select(p => double.IsFinite(p.Summary.HalfWidth) ? p.Summary.HalfWidth : 0).ToArray();
            var bars = plot.Add.ErrorBar(xs, ys, errors);
            bars.Color = color;
        }
        plot.Axes.Bottom.SetTicks(data.Depths.Select(d => Math.Log2(d)).ToArray(), data.Depths.Select(d => d.ToString()).ToArray());
        plot.Axes.Margins(0.1, 0.15);
        return Render(plot, "Final test loss vs depth", "Mean final test loss over seeds; error bars: 95% confidence interval (Student's t). Diverged runs are left out (see the scorecard's divergence rate).");
    }

    static Figure GradientNormByLayer(StudyData data, int depth)
    {
        var plot = NewPlot($"Gradient norm by layer, {Layers(depth)}", "block (0 = next to the embedding)", "log10 gradient norm of the block");
        foreach (var group in data.Groups)
        {
            var readings = data.Of(group, depth).SelectMany(r => r.Diagnostics).Where(d => d.Name == GradientNormProbe.Name && d.Value > 0).ToList();
            if (readings.Count == 0) continue;
            int last = readings.Max(d => d.Step);
            var color = ColorOf(data, group);
            var probes = last == 0 ? new[] { (0, LinePattern.Solid, "init") } : [(0, LinePattern.Solid, "init"), (last, LinePattern.Dashed, $"step {last}")];
            foreach (var (step, pattern, when) in probes)
            {
                var atStep = readings.Where(d => d.Step == step).GroupBy(d => d.Index).OrderBy(g => g.Key).ToList();
                if (atStep.Count == 0) continue;
                var line = plot.Add.Scatter(atStep.Select(g => (double)g.Key).ToArray(), atStep.Select(g => Math.Log10(g.Average(d => d.Value))).ToArray());
                line.Color = color;
                line.LinePattern = pattern;
                line.LineWidth = 2;
                line.MarkerSize = 6;
                line.LegendText = $"{group}, {when}";
            }
        }
        plot.Axes.Bottom.SetTicks(Enumerable.Range(0, depth).Select(i => (double)i).ToArray(), Enumerable.Range(0, depth).Select(i => i.ToString()).ToArray());
        plot.Axes.Margins(0.1, 0.15);
        return Render(plot, $"Gradient norm by layer, {Layers(depth)}", "L2 norm of each block's parameter gradients (before clipping), mean over seeds: solid at initialisation (step 0), dashed at the last probe.");
    }

    static Figure Bars(StudyData data, string title, string caption, Func<RunData, double> measure, string axis)
    {
        var plot = NewPlot(title, "layers", axis);
        int groups = data.Groups.Count;
        var ticks = new List<(double, string)>();
        for (int di = 0; di < data.Depths.Count; di++)
        {
            int depth = data.Depths[di];
            double center = di * (groups + 1);
            ticks.Add((center + (groups - 1) / 2.0, depth.ToString()));
            for (int gi = 0; gi < groups; gi++)
            {
                var values = data.Of(data.Groups[gi], depth).Where(r => r.Done).Select(measure).ToList();
                if (values.Count == 0) continue;
                var bar = new Bar { Position = center + gi, Value = values.Average(), FillColor = ColorOf(data, data.Groups[gi]), Error = Std(values) };
                plot.Add.Bar(bar);
            }
        }
        for (int gi = 0; gi < groups; gi++)
            plot.Legend.ManualItems.Add(new LegendItem { LabelText = data.Groups[gi], FillColor = ColorOf(data, data.Groups[gi]) });
        plot.Axes.Bottom.SetTicks(ticks.Select(t => t.Item1).ToArray(), ticks.Select(t => t.Item2).ToArray());
        plot.Axes.Margins(bottom: 0);
        return Render(plot, title, $"{caption}; mean over seeds, whisker: ± one standard deviation.");
    }

    internal static string Layers(int depth) => depth == 1 ? "1 layer" : $"{depth} layers";

    internal static Plot NewPlot(string title, string x, string y)
    {
        var plot = new Plot();
        plot.Title(title);
        plot.XLabel(x);
        plot.YLabel(y);
        return plot;
    }

    internal static Figure Render(Plot plot, string title, string caption)
    {
        plot.ShowLegend(Edge.Right); // outside the data area: never hides a curve
        return new Figure(title, caption, plot.GetImageBytes(Width, Height, ImageFormat.Png));
    }

    static double[] MovingAverage(double[] xs, int window)
    {
        var result = new double[xs.Length];
        double sum = 0;
        for (int i = 0; i < xs.Length; i++)
        {
            sum += xs[i];
            if (i >= window) sum -= xs[i - window];
            result[i] = sum / Math.Min(i + 1, window);
        }
        return result;
    }

    /// <summary>Spread for bands and whiskers: none with a single value.</summary>
    static double Std(IReadOnlyList<double> xs) => xs.Count < 2 ? 0 : Statistics.SampleStd(xs);
}
