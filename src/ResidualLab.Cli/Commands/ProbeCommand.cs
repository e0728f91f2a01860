using System.CommandLine;
using System.Globalization;
using ResidualLab.Checkpoints;
using ResidualLab.Config;
using ResidualLab.Data;
using ResidualLab.Diagnostics;
using ResidualLab.Families;
using ResidualLab.Native;
using ResidualLab.Results;
using ResidualLab.Results.Store;
using ResidualLab.Training;
using ResidualLab.Training.Tasks;
using Spectre.Console;
using static TorchSharp.torch;

namespace ResidualLab.Cli.Commands;

/// <summary>
/// reslab probe RUN [--lesion] [--logit-lens] [--tuned-lens] [--dla] [--patching] [--streams]
/// [--export-activations FILE [--hooks a,b]] [--results DIR] [--threads N]: post-hoc analyses of a finished
/// GPT run through its hook points.
/// </summary>
internal static class ProbeCommand
{
    public static Command Build()
    {
        var run = new Argument<string>("run") { Description = "a run id (a folder under RESULTS/runs) or a run folder" };
        var lesion = new Option<bool>("--lesion") { Description = "val loss with each block replaced by the identity, and with adjacent blocks swapped" };
        var logitLens = new Option<bool>("--logit-lens") { Description = "val loss decoding each block's resid_post through the final norm and head" };
        var tunedLens = new Option<bool>("--tuned-lens") { Description = "val loss of a tuned lens per block (affine translators trained toward the final output), next to the logit lens" };
        var tunedSteps = new Option<int>("--tuned-lens-steps") { Description = "training steps of the tuned lens", DefaultValueFactory = _ => TunedLens.DefaultSteps };
        var dla = new Option<bool>("--dla") { Description = "direct logit attribution of the embedding and each attention and MLP sublayer to the correct next token" };
        var patching = new Option<bool>("--patching") { Description = "activation patching (clean into corrupted) at resid_pre/mid/post of every block, next to attribution patching" };
        var streams = new Option<bool>("--streams") { Description = "multi-stream schemes: stream similarity, H_res entropy and distance from J/n, logit lens per stream" };
        var export = new Option<string?>("--export-activations") { Description = "write the first val batch's activations to this safetensors file (TransformerLens names)" };
        var hooks = new Option<string?>("--hooks") { Description = "comma-separated hook points for --export-activations (default: all)" };
        var results = new Option<string>("--results") { Description = "results folder", DefaultValueFactory = _ => "results" };
        var threads = new Option<int?>("--threads") { Description = "intra-op CPU threads (default: libtorch's choice)" };
        var command = new Command("probe", "Probe a finished run through its hook points: lesions, swaps, logit and tuned lens, direct logit attribution, "
            + "patching, stream health, activation export. Prints tables and records them in the store.");
        command.Arguments.Add(run);
        foreach (var option in new Option[] { lesion, logitLens, tunedLens, tunedSteps, dla, patching, streams, export, hooks, results, threads })
            command.Options.Add(option);
        command.SetAction(parsed =>
        {
            bool doLesion = parsed.GetValue(lesion), doLens = parsed.GetValue(logitLens), doTuned = parsed.GetValue(tunedLens);
            bool doDla = parsed.GetValue(dla), doPatching = parsed.GetValue(patching), doStreams = parsed.GetValue(streams);
            string? exportPath = parsed.GetValue(export);
            if (!(doLesion || doLens || doTuned || doDla || doPatching || doStreams) && exportPath is null)
                throw new ConfigException("choose a probe: --lesion, --logit-lens, --tuned-lens, --dla, --patching, --streams or --export-activations FILE");
            if (parsed.GetValue(hooks) is not null && exportPath is null)
                throw new ConfigException("--hooks selects what --export-activations writes; give --export-activations FILE too");
            int steps = parsed.GetValue(tunedSteps);
            if (steps < 0) throw new ConfigException($"--tuned-lens-steps must be 0 or more, got {steps}");
            TorchRuntime.SetThreads(parsed.GetValue(threads) ?? 0);
            string dir = RunFiles.FindRunFolder(parsed.GetValue(run)!, parsed.GetValue(results)!);
            var checkpoint = RunExport.Load(dir);
            using var model = checkpoint.Model;
            var config = checkpoint.Config;
            var t = config.Train;
            var gpt = config.Settings<GptSettings>();
            var corpus = CorpusLoader.Load(gpt.Data, gpt.Shape.BlockSize, checkpoint.Tokenizer);
            var probes = new LayerProbes(model, corpus.Val, t.BatchSize, t.EvalBatches, CPU);
            var (x, y) = new TokenBatcher(corpus.Val, t.BatchSize, gpt.Shape.BlockSize, LanguageModelTask.EvalSeed).Next(CPU);

            double intact = probes.Intact();
            var curves = new List<LayerLosses>();
            var records = new List<Diagnostic>();
            if (doLesion) curves.AddRange([probes.Lesions(), probes.Swaps()]);
            if (doLens || doTuned) curves.Add(probes.LogitLenses());
            if (doTuned)
            {
                using var lens = new TunedLens(model);
                lens.Train(corpus.Train, t.BatchSize, steps, (ulong)t.Seed, CPU);
                curves.Add(lens.Evaluate(corpus.Val, t.BatchSize, t.EvalBatches, CPU));
            }
            Print(config, intact, curves);
            if (doDla) records.AddRange(ProbeTables.Attribution(DirectLogitAttribution.Compute(model, x, y), t.MaxIters));
            if (doPatching) records.AddRange(ProbeTables.Patching(ActivationPatching.Run(model, x, y), t.MaxIters));
            if (doStreams) curves.AddRange(ProbeTables.Streams(model, probes, x));
            if (exportPath is not null)
            {
                var names = parsed.GetValue(hooks)?.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
                var meta = new Dictionary<string, string> { ["run_id"] = config.RunId, ["connection"] = config.Connection.Name, ["label"] = config.Label };
                try
                {
                    var written = ActivationExport.Write(exportPath, model, x, names, meta);
                    Console.WriteLine($"wrote {written.Count} activations of {x.shape[0]} val sequences to {exportPath}");
                }
                catch (ArgumentException e)
                {
                    throw new ConfigException($"--hooks: {e.Message}");
                }
            }
            Record(dir, config, curves.SelectMany(c => c.ToDiagnostics(t.MaxIters)).Concat(records).ToList());
            return 0;
        });
        return command;
    }

    static void Print(RunConfig config, double intact, IReadOnlyList<LayerLosses> curves)
    {
        AnsiConsole.MarkupLineInterpolated($"[bold]{config.Label}[/]  run {config.RunId}: val loss {intact.ToString("0.0000", CultureInfo.InvariantCulture)}");
        var table = new Table().AddColumn("block");
        foreach (var c in curves) table.AddColumn(new TableColumn(c.Name == LayerProbes.Swap ? "swap with next" : c.Name).RightAligned());
        for (int i = 0; i < config.Model.Depth; i++)
            table.AddRow(curves.Select(c => i < c.Losses.Count ? c.Losses[i].ToString("0.0000", CultureInfo.InvariantCulture) : "")
                .Prepend(i.ToString(CultureInfo.InvariantCulture)).ToArray());
        AnsiConsole.Write(table);
    }

    /// <summary>Into the store of the results folder that holds the run (…/runs/ID), when it knows the run.</summary>
    static void Record(string runDir, RunConfig config, IReadOnlyList<Diagnostic> readings)
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
        store.AddMetrics(config.RunId, [], [], readings);
        Console.WriteLine($"recorded in {Path.Combine(resultsDir, ResultsStore.FileName)}");
    }
}
