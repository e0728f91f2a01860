using System.CommandLine;
using System.Globalization;
using ResidualLab.Checkpoints;
using ResidualLab.Data;
using ResidualLab.Diagnostics;
using ResidualLab.Experiments;
using ResidualLab.Experiments.Store;
using ResidualLab.Native;
using Spectre.Console;
using static TorchSharp.torch;

namespace ResidualLab.Cli.Commands;

/// <summary>reslab probe RUN --lesion | --logit-lens [--results DIR] [--threads N]: post-hoc val losses per block.</summary>
internal static class ProbeCommand
{
    public static Command Build()
    {
        var run = new Argument<string>("run") { Description = "a run id (a folder under RESULTS/runs) or a run folder" };
        var lesion = new Option<bool>("--lesion") { Description = "val loss with each block replaced by the identity, and with adjacent blocks swapped" };
        var logitLens = new Option<bool>("--logit-lens") { Description = "val loss decoding each block's resid_post through the final norm and head" };
        var results = new Option<string>("--results") { Description = "results folder", DefaultValueFactory = _ => "results" };
        var threads = new Option<int?>("--threads") { Description = "intra-op CPU threads (default: libtorch's choice)" };
        var command = new Command("probe", "Probe a finished run layer by layer: lesions, swaps, logit lens. Prints a table and records it in the store.");
        command.Arguments.Add(run);
        command.Options.Add(lesion);
        command.Options.Add(logitLens);
        command.Options.Add(results);
        command.Options.Add(threads);
        command.SetAction(parsed =>
        {
            bool doLesion = parsed.GetValue(lesion), doLens = parsed.GetValue(logitLens);
            if (!doLesion && !doLens) throw new ConfigException("choose a probe: --lesion, --logit-lens or both");
            TorchRuntime.SetThreads(parsed.GetValue(threads) ?? 0);
            string dir = RunFiles.FindRunFolder(parsed.GetValue(run)!, parsed.GetValue(results)!);
            var checkpoint = RunExport.Load(dir);
            using var model = checkpoint.Model;
            var config = checkpoint.Config;
            var corpus = CorpusLoader.Load(config.Data, config.Model.BlockSize, checkpoint.Tokenizer);
            var probes = new LayerProbes(model, corpus.Val, config.Train.BatchSize, config.Train.EvalBatches, CPU);

            double intact = probes.Intact();
            var curves = new List<LayerLosses>();
            if (doLesion) curves.AddRange([probes.Lesions(), probes.Swaps()]);
            if (doLens) curves.Add(probes.LogitLenses());
            Print(config, intact, curves);
            Record(dir, config, curves);
            return 0;
        });
        return command;
    }

    static void Print(RunConfig config, double intact, IReadOnlyList<LayerLosses> curves)
    {
        AnsiConsole.MarkupLineInterpolated($"[bold]{config.Label}[/]  run {config.RunId}: val loss {intact.ToString("0.0000", CultureInfo.InvariantCulture)}");
        var table = new Table().AddColumn("block");
        foreach (var c in curves) table.AddColumn(new TableColumn(c.Name == LayerProbes.Swap ? "swap with next" : c.Name).RightAligned());
        for (int i = 0; i < config.Model.NLayer; i++)
            table.AddRow(curves.Select(c => i < c.Losses.Count ? c.Losses[i].ToString("0.0000", CultureInfo.InvariantCulture) : "")
                .Prepend(i.ToString(CultureInfo.InvariantCulture)).ToArray());
        AnsiConsole.Write(table);
    }

    /// <summary>Into the store of the results folder that holds the run (…/runs/ID), when it knows the run.</summary>
    static void Record(string runDir, RunConfig config, IReadOnlyList<LayerLosses> curves)
    {
        var runs = Path.GetDirectoryName(Path.GetFullPath(runDir).TrimEnd(Path.DirectorySeparatorChar));
        var resultsDir = Path.GetFileName(runs) == "runs" ? Path.GetDirectoryName(runs) : null;
        if (resultsDir is null || !File.Exists(Path.Combine(resultsDir, ResultsStore.FileName)))
        {
            Console.WriteLine($"not recorded: '{runDir}' is not in a results folder with a {ResultsStore.FileName}");
            return;
        }
        using var store = ResultsStore.Open(resultsDir);
        if (store.Find(config.RunId) is null)
        {
            Console.WriteLine($"not recorded: the store in '{resultsDir}' has no run {config.RunId}");
            return;
        }
        store.AddMetrics(config.RunId, [], [], curves.SelectMany(c => c.ToDiagnostics(config.Train.MaxIters)).ToList());
        Console.WriteLine($"recorded in {Path.Combine(resultsDir, ResultsStore.FileName)}");
    }
}
