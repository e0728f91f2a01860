using System.Net;
using System.Text;
using ResidualLab.Results.Store;

namespace ResidualLab.Reports;

/// <summary>
/// The report as ONE self-contained HTML file: the scorecard, the final-loss table, every figure as a
/// base64 PNG data URI, the runs and their environment. No scripts, no external resources.
/// </summary>
internal static class HtmlReport
{
    public static string Render(StudyData data, string source, string baseline, IReadOnlyList<ScorecardRow> scorecard,
        IReadOnlyList<FinalLossRow> finalLoss, IReadOnlyList<Figure> figures, IReadOnlyList<ArmTuning>? tuning = null,
        IReadOnlyList<string>? stability = null, IReadOnlyList<TokenCosineRow>? rankCollapse = null)
    {
        var h = new StringBuilder();
        h.Append("""
            <!DOCTYPE html>
            <html lang="en"><head><meta charset="utf-8"><title>ResidualLab report</title>
            <style>
            body { font-family: "DejaVu Sans", sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
            table { border-collapse: collapse; margin: 1em 0; font-size: 0.85em; }
            th, td { border: 1px solid #ccc; padding: 0.3em 0.45em; text-align: right; vertical-align: top; }
            th { background: #f0f0f0; } td.text, th.text { text-align: left; }
            figure { margin: 1.5em 0; } figure img { max-width: 100%; border: 1px solid #ddd; }
            figcaption { font-size: 0.85em; color: #555; } .worse { color: #b00; } .better { color: #070; }
            .headline { font-weight: bold; } .neutral { color: #555; } .unstable { color: #c60; } .baseline { color: #036; }
            ol.verdicts li { margin: 0.4em 0; font-size: 0.9em; }
            </style></head><body>
            """);
        h.Append($"<h1>ResidualLab report</h1><p>{E(source)}: {data.Runs.Count} finished runs ({data.Runs.Count(r => r.Diverged)} diverged), {data.Unfinished} not finished; {data.Groups.Count} schemes, depths {E(string.Join(", ", data.Depths))}; baseline <b>{E(baseline)}</b>. Generated {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC.</p>");

        h.Append("<h2>Necessity scorecard</h2><p>Each scheme against the baseline: difference of final test loss (scheme &minus; baseline, nats) at the deepest depth both have, with its 95% confidence interval and Welch's t-test over seeds; divergence rate; worst gradient-norm spike (largest ratio of a step's global gradient norm to the median of the 20 steps before it); slope of final loss against ln(depth); throughput and memory as ratios to the baseline.</p>");
        h.Append($"<p>Equal compute: the same depth compared at the largest training budget every compared run reached, in training FLOPs (the model's matrix products plus each scheme's own work, e.g. n-stream mixing; FLOPs/step is the ratio to the baseline's) and in seconds of training steps (wall-clock). These read each run's <b>validation</b> loss, interpolated linearly between evaluations: mid-training, only the validation split may be read; the test split is read at the end of training only, and the main verdict stays on test loss. {E(EqualCompute.WallClockNote(data))}</p>");
        h.Append("<table><tr><th class=text>scheme</th><th>depth</th><th>test loss</th><th>&Delta; vs baseline [95% CI]</th><th>p (Welch)</th><th>diverged</th><th>worst grad spike</th><th>slope vs ln(depth)</th><th>throughput</th><th>memory</th><th>parameters</th><th>FLOPs/step</th><th>val &Delta; at equal FLOPs [95% CI]</th><th>val &Delta; at equal wall-clock [95% CI]</th><th class=text>verdict</th></tr>");
        foreach (var r in scorecard)
            h.Append($"<tr><td class=text>{E(r.Group)}</td><td>{r.ComparedDepth}</td><td>{F(r.Loss.Mean)}</td><td>{Diff(r.Difference)}</td><td>{P(r.Difference)}</td><td>{r.Diverged}/{r.Finished}</td><td>{Times(r.WorstGradSpike, "0.0")}</td><td>{F(r.DepthSlope, "+0.000;-0.000")}</td><td>{Times(r.ThroughputRatio)}</td><td>{Times(r.MemoryRatio)}</td><td>{r.Parameters:N0}</td><td>{Times(r.FlopsRatio)}</td><td>{Equal(r.EqualFlops)}</td><td>{Equal(r.EqualTime)}</td><td class=text>{Headline(r)}</td></tr>");
        h.Append("</table><h3>Verdicts</h3><ol class=verdicts>");
        foreach (var r in scorecard)
            h.Append($"<li><b>{E(r.Group)}</b>, {Headline(r)}: {E(r.Verdict[Math.Min(r.Verdict.Length, r.Headline.Length + 2)..])}</li>");
        h.Append("</ol>");

        if (stability is { Count: > 0 })
        {
            h.Append("<h2>Stability</h2><p>Verdicts judged at several budgets (train.max_iters, each a full run with its own schedule) or initialisations, side by side:</p><ul>");
            foreach (var line in stability) h.Append($"<li>{E(line)}</li>");
            h.Append("</ul>");
        }

        if (tuning is { Count: > 0 })
        {
            h.Append("<h2>Tuning</h2><p>Every arm was trained at every value of the [tune] keys; each arm's value is the one with the lowest mean final <b>validation</b> loss over the seeds every value was trained at (a study tuned on its first seed trains its other seeds at the chosen value only), and the tables above compare the arms each at its own value, on <b>test</b> loss. A chosen value at the edge of the grid means the optimum may lie outside it.</p>");
            h.Append("<table><tr><th class=text>scheme</th><th>layers</th><th class=text>value</th><th>runs</th><th>diverged</th><th>val loss (mean &plusmn; std)</th><th>test loss (mean &plusmn; std)</th><th class=text>chosen</th></tr>");
            foreach (var a in tuning)
                foreach (var v in a.Values)
                    h.Append($"<tr><td class=text>{E(a.Group)}</td><td>{a.Depth}</td><td class=text>{E(v.Value)}</td><td>{v.Runs}</td><td>{v.Diverged}</td><td>{F(v.Val.Mean)} &plusmn; {F(v.Val.Std)}</td><td>{F(v.Test.Mean)} &plusmn; {F(v.Test.Std)}</td><td class=text>{(v.Value == a.Best ? "chosen" + E(a.Edges.Count > 0 ? " (" + string.Join("; ", a.Edges) + ")" : "") : "")}</td></tr>");
            h.Append("</table>");
        }

        if (rankCollapse is { Count: > 0 })
        {
            h.Append("<h2>Stream health: rank collapse</h2><p>The mean cosine between the representations of a sequence's distinct tokens (<code>token_cosine</code>, from the training probes), at the embedding (block 0's resid_pre) and after the last block (before the final norm), at initialisation (the first probe step) and trained (the last), mean over runs; also its largest value along depth. Near 1 the tokens are one vector up to scale: attention then has nothing to tell apart and its gradients to the queries and keys vanish. The figures below give every position.</p>");
            h.Append("<table><tr><th class=text>scheme</th><th>layers</th><th>runs</th><th>input, init</th><th>after the last block, init</th><th>largest along depth, init</th><th>input, trained</th><th>after the last block, trained</th><th>largest along depth, trained</th></tr>");
            foreach (var r in rankCollapse)
                h.Append($"<tr><td class=text>{E(r.Group)}</td><td>{r.Depth}</td><td>{r.Runs}</td><td>{F(r.InputAtInit)}</td><td>{F(r.OutputAtInit)}</td><td>{F(r.LargestAtInit)}</td><td>{F(r.InputTrained)}</td><td>{F(r.OutputTrained)}</td><td>{F(r.LargestTrained)}</td></tr>");
            h.Append("</table>");
        }

        h.Append("<h2>Final test loss</h2><table><tr><th class=text>scheme</th><th>layers</th><th>seeds</th><th>mean</th><th>std</th><th>95% CI</th><th>&Delta; vs baseline [95% CI]</th><th>p (Welch)</th><th>diverged</th></tr>");
        foreach (var r in finalLoss)
            h.Append($"<tr><td class=text>{E(r.Group)}</td><td>{r.Depth}</td><td>{r.Loss.Count}</td><td>{F(r.Loss.Mean)}</td><td>{F(r.Loss.Std)}</td><td>{F(r.Loss.Low)} &ndash; {F(r.Loss.High)}</td><td>{Diff(r.VersusBaseline)}</td><td>{P(r.VersusBaseline)}</td><td>{r.Diverged}/{r.Runs}</td></tr>");
        h.Append("</table><p>Tables as CSV next to this file: scorecard.csv, final_loss.csv, runs.csv (and tuning.csv with a [tune] section, stream_health.csv with stream probes).</p>");

        h.Append("<h2>Figures</h2>");
        foreach (var f in figures)
            h.Append($"<figure><img alt=\"{E(f.Title)}\" src=\"data:image/png;base64,{Convert.ToBase64String(f.Png)}\"><figcaption>{E(f.Caption)}</figcaption></figure>");

        h.Append("<h2>Runs</h2><table><tr><th class=text>run</th><th class=text>scheme</th><th>layers</th><th>seed</th><th class=text>status</th><th>steps</th><th>val loss</th><th>test loss</th><th>ms/step</th><th>throughput</th><th>peak RSS MiB</th><th class=text>note</th></tr>");
        foreach (var r in data.Runs)
            h.Append($"<tr><td class=text>{E(r.Run.RunId)}</td><td class=text>{E(r.Group)}</td><td>{r.Depth}</td><td>{r.Run.Seed}</td><td class=text>{E(r.Run.Status)}</td><td>{r.Run.Steps}</td><td>{F(r.Run.ValLoss ?? double.NaN)}</td><td>{F(r.Run.TestLoss ?? double.NaN)}</td><td>{F(r.Run.MeanStepMs, "0.0")}</td><td>{F(r.Run.ItemsPerSecond, "0")} {E(r.Run.ItemUnit ?? "items")}/s</td><td>{F(r.Run.PeakRssBytes / 1048576.0, "0")}</td><td class=text>{E(r.Run.Error ?? "")}</td></tr>");
        h.Append("</table>");

        h.Append("<h2>Environment</h2><table><tr><th class=text>ResidualLab</th><th class=text>git commit</th><th class=text>.NET</th><th class=text>TorchSharp</th><th class=text>libtorch</th><th class=text>device</th><th>threads</th><th class=text>CPU</th><th class=text>oneDNN</th><th class=text>host</th><th class=text>OS</th></tr>");
        foreach (RunEnvironment e in data.Environments)
            h.Append($"<tr><td class=text>{E(e.Version)}</td><td class=text>{E(e.CommitDescription)}</td><td class=text>{E(e.DotNet)}</td><td class=text>{E(e.TorchSharp)}</td><td class=text>{E(e.LibTorch)}</td><td class=text>{E(e.Device)}</td><td>{e.Threads}</td><td class=text>{E(e.Cpu ?? "not recorded")}</td><td class=text>{E(e.OneDnn ?? "not recorded")}</td><td class=text>{E(e.Host)}</td><td class=text>{E(e.Os)}</td></tr>");
        h.Append("</table></body></html>\n");
        return h.ToString();
    }

    /// <summary>The verdict's headline, coloured by what it says.</summary>
    static string Headline(ScorecardRow r)
    {
        string h = r.Headline;
        string cls = h.StartsWith("unstable", StringComparison.Ordinal) ? "unstable" : h switch
        {
            "worse" => "worse",
            "better" => "better",
            "baseline" => "baseline",
            _ => "neutral",
        };
        return $"<span class=\"headline {cls}\">{E(h)}</span>";
    }

    static string Diff(WelchTest? w) => w is null ? "-" : $"{F(w.Difference, "+0.0000;-0.0000")} [{F(w.Low, "+0.000;-0.000")}, {F(w.High, "+0.000;-0.000")}]";

    /// <summary>"1.23x", or "-" when not measured.</summary>
    static string Times(double x, string format = "0.00") => double.IsFinite(x) ? F(x, format) + "x" : "-";

    /// <summary>The difference with its CI, or the two means when a side has one seed, and the budget.</summary>
    static string Equal(EqualBudget? e) => e is null ? "-"
        : (e.Difference is null ? $"{F(e.Loss.Mean, "0.000")} vs {F(e.BaselineLoss.Mean, "0.000")}" : Diff(e.Difference)) + $" at {F(e.Budget, "0.00e+0")}";

    static string P(WelchTest? w) => w is null ? "-" : w.P < 0.001 ? "&lt;0.001" : F(w.P, "0.000") + (w.Significant() ? " *" : "");

    static string F(double x, string format = "0.0000") => StudyData.F(x, format);

    static string E(string s) => WebUtility.HtmlEncode(s);
}
