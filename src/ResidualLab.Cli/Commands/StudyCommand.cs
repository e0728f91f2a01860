using System.CommandLine;
using System.Diagnostics;
using ResidualLab.Config;
using ResidualLab.Data;
using ResidualLab.Experiments;
using ResidualLab.Reports;
using ResidualLab.Results.Store;
using ResidualLab.Families;
using Spectre.Console;

namespace ResidualLab.Cli.Commands;

/// <summary>
/// reslab study necessity [--full] [--steps S] [--parallel N]: the seed question asked so that no single
/// hyperparameter decides it. Trains the preset's grid (finished runs are skipped, so a killed study
/// resumes), then prints the table per depth, init and budget and one verdict line per depth.
/// </summary>
internal static class StudyCommand
{
    public static Command Build()
    {
        var study = new Command("study", "Studies that ask one question across initialisations, learning rates, budgets and seeds.");
        var full = new Option<bool>("--full") { Description = "the seed preset's size (d_model 128, batch 32, 600 and 3000 steps): hours on a CPU" };
        var steps = new Option<int?>("--steps") { Description = $"the short budget in steps (the long one is {NecessityStudy.LongBudgetFactor}x); default: the preset's" };
        var parallel = new Option<int>("--parallel") { Description = StudyLayoutOption.Description, DefaultValueFactory = _ => 0 };
        var run = new RunOptions();
        var necessity = new Command("necessity",
            "With vs without the residual at depth 1, 2 and 6; inits gpt2 and pytorch; 3 learning rates per arm (chosen on validation); 3 seeds; a short and a 5x longer budget. Verdicts on the test split.");
        necessity.Options.Add(full);
        necessity.Options.Add(steps);
        necessity.Options.Add(parallel);
        run.AddTo(necessity);
        necessity.SetAction(parsed =>
        {
            int n = parsed.GetValue(parallel);
            if (n < 0) throw new ConfigException($"--parallel must be 0 (auto) or at least 1, got {n}");
            var values = RunOptions.LoadPreset(NecessityStudy.Preset);
            if (parsed.GetValue(full)) NecessityStudy.Full(values);
            if (parsed.GetValue(steps) is int s) NecessityStudy.Budgets(values, s, "--steps");
            run.Apply(parsed, values);
            var layout = StudyLayoutOption.Resolve(n, values);
            n = layout.Parallel;
            var plan = SweepGrid.Expand(values);
            string outDir = Path.Combine(parsed.GetValue(run.Out)!, parsed.GetValue(full) ? "necessity-full" : "necessity");
            if (Console.IsOutputRedirected) AnsiConsole.Profile.Width = 200;

            var first = plan.Runs[0];
            var gpt = first.Settings<GptSettings>();
            AnsiConsole.MarkupLineInterpolated(
                $"[bold]necessity study[/]: {NecessityStudy.Describe(plan)}, {layout}; d_model {gpt.Shape.DModel}, n_head {gpt.Shape.NHead}, block_size {gpt.Shape.BlockSize}, batch {first.Train.BatchSize} -> {outDir}");
            var corpus = CorpusLoader.Load(gpt.Data, gpt.Shape.BlockSize);
            double unigram = NecessityStudy.UnigramLoss(corpus);

            var clock = Stopwatch.StartNew();
            using var store = ResultsStore.Open(outDir);
            using var cancel = new CancellationTokenSource();
            Console.CancelKeyPress += (_, e) => { e.Cancel = true; cancel.Cancel(); };
            var outcome = TerminalProgress.Track(progress => SweepRunner.Run(plan, outDir, store, n,
                cfg => progress.For($"{cfg.Label} {cfg.RunId}"), line => AnsiConsole.WriteLine(line), cancel.Token,
                beforeTraining: todo => SweepCommand.PrintEstimate(todo, n)));
            AnsiConsole.MarkupLineInterpolated(
                $"{outcome.Total} runs: {outcome.Skipped.Count} already finished, {outcome.Trained.Count} trained, {outcome.Unfinished.Count} unfinished, in {clock.Elapsed.TotalSeconds:0} s");

            var ids = plan.Runs.Select(r => r.RunId).ToHashSet();
            var data = StudyData.Load(store, plan.TunedKeys);
            data = data with { Runs = data.Runs.Where(r => ids.Contains(r.Run.RunId)).ToList() };
            var cells = NecessityTable.Cells(data, unigram);
            AnsiConsole.WriteLine(NecessityTable.Markdown(cells));
            AtomicFile.WriteText(Path.Combine(outDir, "necessity.csv"), NecessityTable.Csv(cells));
            AtomicFile.WriteText(Path.Combine(outDir, "necessity.md"), NecessityTable.Markdown(cells));
            long peak = data.Runs.Select(r => r.Run.PeakRssBytes).DefaultIfEmpty(0).Max();
            AnsiConsole.MarkupLineInterpolated(
                $"wall time {clock.Elapsed.TotalMinutes:0.0} min for the {outcome.Trained.Count} runs trained now; largest peak RSS of a run {peak / 1048576.0:0} MiB; tables: {Path.Combine(outDir, "necessity.csv")}, necessity.md; full report: reslab report {outDir} --baseline pre-norm");
            foreach (var line in NecessityTable.Lines(cells, unigram)) AnsiConsole.WriteLine(line);
            return outcome.Unfinished.Count == 0 ? 0 : 1;
        });
        study.Subcommands.Add(necessity);
        return study;
    }
}
