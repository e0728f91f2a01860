using System.Globalization;
using ResidualLab.Connections;
using ResidualLab.Diagnostics;
using ResidualLab.Hooks;
using ResidualLab.Models;
using ResidualLab.Training;
using Spectre.Console;
using static TorchSharp.torch;

namespace ResidualLab.Cli.Commands;

/// <summary>The tables `reslab probe` prints for its analyses, and the readings it records for them.</summary>
static class ProbeTables
{
    static string F4(double v) => v.ToString("0.0000", CultureInfo.InvariantCulture);

    /// <summary>Readings "dla", index 0 the embedding, then 1 + sublayer.</summary>
    public static IEnumerable<Diagnostic> Attribution(DirectLogitAttribution.Attribution dla, int step)
    {
        AnsiConsole.MarkupLineInterpolated($"direct logit attribution to the correct next token (mean over the first val batch): logit {F4(dla.Logit)}, final norm's bias term {F4(dla.BiasTerm)}, left over {dla.Closure:0.0e+0}");
        var table = new Table().AddColumn("component").AddColumn(new TableColumn("logit attribution").RightAligned());
        for (int i = 0; i < dla.Values.Count; i++) table.AddRow(dla.Components[i], F4(dla.Values[i]));
        AnsiConsole.Write(table);
        return dla.Values.Select((v, i) => new Diagnostic(step, DirectLogitAttribution.RecordName, i, v));
    }

    /// <summary>Readings per hook point, index 3 block + 0 resid_pre / 1 resid_mid / 2 resid_post.</summary>
    public static IEnumerable<Diagnostic> Patching(ActivationPatching.Result r, int step)
    {
        if (r.CorruptLoss == r.CleanLoss)
        {
            AnsiConsole.MarkupLineInterpolated($"patching at position {r.Position}: the corruption leaves the loss at {F4(r.CleanLoss)}; there is nothing to restore");
            return [];
        }
        AnsiConsole.MarkupLineInterpolated($"patching at position {r.Position}: clean loss {F4(r.CleanLoss)}, corrupted {F4(r.CorruptLoss)}; attribution vs activation patching: correlation {r.Correlation:0.000}, largest difference {r.MaxDifference:0.000}");
        var table = new Table().AddColumn("hook point").AddColumn(new TableColumn("restored (patching)").RightAligned())
            .AddColumn(new TableColumn("restored (attribution)").RightAligned());
        for (int i = 0; i < r.Hooks.Count; i++) table.AddRow(r.Hooks[i], F4(r.Restored[i]), F4(r.AttributionRestored[i]));
        AnsiConsole.Write(table);
        return r.Restored.Select((v, i) => new Diagnostic(step, ActivationPatching.Restored, i, v))
            .Concat(r.AttributionRestored.Select((v, i) => new Diagnostic(step, ActivationPatching.AttributionRestored, i, v)));
    }

    /// <summary>Stream health on the first val batch (printed) and the logit lens per stream (returned to record).</summary>
    public static IEnumerable<LayerLosses> Streams(Gpt model, LayerProbes probes, Tensor x)
    {
        int n = probes.StreamCount();
        if (n < 2)
        {
            Console.WriteLine("--streams: the scheme has a single residual stream");
            return [];
        }
        var lens = probes.StreamLenses()!;
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var (_, cache) = model.RunWithCache(x, name => name.EndsWith("hook_resid_post", StringComparison.Ordinal));
        var maps = model.Blocks.SelectMany(b => new[] { b.AttentionConnection, b.MlpConnection })
            .Select(c => (c as IStreamMixing)?.LastMaps?.Res).ToList();
        var products = maps.All(m => m is not null) ? StreamHealth.RunningProducts(maps!).ToList() : [];
        var table = new Table().AddColumn("block").AddColumn(new TableColumn("stream cosine").RightAligned())
            .AddColumn(new TableColumn("H_res entropy attn | mlp").RightAligned()).AddColumn(new TableColumn("product's distance from J/n").RightAligned())
            .AddColumn(new TableColumn($"logit lens per stream (0..{n - 1})").RightAligned());
        for (int b = 0; b < model.Blocks.Count; b++)
        {
            string entropy = maps.All(m => m is not null) ? $"{F4(Value(StreamHealth.RowEntropy(maps[2 * b]!)))} | {F4(Value(StreamHealth.RowEntropy(maps[2 * b + 1]!)))}" : "";
            string distance = products.Count > 0 ? F4(Value(StreamHealth.DistanceFromUniform(products[2 * b + 1]))) : "";
            table.AddRow(b.ToString(CultureInfo.InvariantCulture), F4(Value(StreamHealth.StreamCosine(cache[HookNames.ResidPost(b)]))),
                entropy, distance, string.Join(" ", lens.Losses.Skip(b * n).Take(n).Select(F4)));
        }
        AnsiConsole.MarkupLine($"stream health (first val batch; H_res entropy is ln {n} = {F4(Math.Log(n))} for J/n, 0 for a permutation)");
        AnsiConsole.Write(table);
        return [lens];
    }

    static double Value(Tensor t) => t.to(ScalarType.Float64).item<double>();
}
