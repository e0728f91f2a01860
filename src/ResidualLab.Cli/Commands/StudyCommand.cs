using System.CommandLine;
using System.Diagnostics;
using ResidualLab.Config;
using ResidualLab.Data;
using ResidualLab.Experiments;
using ResidualLab.Families;
using ResidualLab.Reports;
using ResidualLab.Results.Store;
using Spectre.Console;

namespace ResidualLab.Cli.Commands;

/// <summary>
/// reslab study necessity [--full] [--steps S] [--parallel N]: is the residual necessary, or one of several ways to keep the
/// signal alive? Trains the preset's grid (finished runs are skipped, so a killed study resumes), then prints the table per
/// depth, budget and arm (each at its own learning rate), and one verdict line per depth.
/// </summary>
internal static class StudyCommand
{
    public static Command Build()
    {
        var study = new Command("study", "Studies that ask one question across initialisations, learning rates, budgets and seeds.");
        var full = new Option<bool>("--full") { Description = "the seed preset's size (d_model 128, batch 32, 600 and 3000 steps): hours on a CPU" };
        var steps = new Option<int?>("--steps") { Description = $"the short budget in steps (the long one is {NecessityStudy.LongBudgetFactor}x); default: the preset's" };
        var parallel = new Option<int>("--parallel") { Description = StudyLayoutOption.Description, DefaultValueFactory = _ => 0 };
        var arms = new Option<string?>("--arms") { Description = "comma-separated schemes instead of the preset's (must include pre-norm), e.g. pre-norm,none,e-spa" };
        var depths = new Option<string?>("--depths") { Description = "comma-separated depths (n_layer) instead of the preset's 6,12, e.g. 24" };
        var lrs = new Option<string?>("--lrs") { Description = "comma-separated learning rates each arm is tuned over instead of the preset's, e.g. 1e-3,3e-3" };
        var seeds = new Option<int?>("--seeds") { Description = "seeds 1..N instead of the preset's 3" };
        var crossed = TunedStudy.CrossedOption();
        var run = new RunOptions();
        var necessity = new Command("necessity",
            "The residual against its naive removal and the shortcut-free Transformers (value-skipinit, e-spa, u-spa, sas-p; sas apart) at depth 6 and 12, each at its own learning rate (chosen on validation), 3 seeds, a short and a 5x longer budget; test losses, steps to match the residual, stream health. Verdicts on the test split.");
        necessity.Options.Add(full);
        necessity.Options.Add(steps);
        necessity.Options.Add(parallel);
        foreach (var option in new Option[] { arms, depths, lrs, seeds, crossed }) necessity.Options.Add(option);
        run.AddTo(necessity);
        necessity.SetAction(parsed =>
        {
            int n = parsed.GetValue(parallel);
            if (n < 0) throw new ConfigException($"--parallel must be 0 (auto) or at least 1, got {n}");
            var values = RunOptions.LoadPreset(NecessityStudy.Preset);
            if (parsed.GetValue(full)) NecessityStudy.Full(values);
            if (parsed.GetValue(steps) is int s) NecessityStudy.Budgets(values, s, "--steps");
            if (parsed.GetValue(arms) is { } armList) NecessityStudy.ReplaceAxis(values, "connection.name", NecessityStudy.Arms(armList, "--arms"), "--arms");
            if (parsed.GetValue(depths) is { } depthList) NecessityStudy.ReplaceAxis(values, "model.n_layer", NecessityStudy.Integers(depthList, "--depths", "6,12"), "--depths");
            if (parsed.GetValue(lrs) is { } lrList) NecessityStudy.ReplaceAxis(values, "train.lr", NecessityStudy.Numbers(lrList, "--lrs", "1e-3,3e-3"), "--lrs", tune: true);
            if (parsed.GetValue(seeds) is int seedCount)
            {
                if (seedCount < 1) throw new ConfigException($"--seeds must be at least 1, got {seedCount}");
                NecessityStudy.ReplaceAxis(values, "train.seed", Enumerable.Range(1, seedCount).Select(i => (object)(long)i).ToList(), "--seeds");
            }
            run.Apply(parsed, values);
            var layout = StudyLayoutOption.Resolve(n, values);
            n = layout.Parallel;
            var plan = SweepGrid.Expand(values);
            string outDir = Path.Combine(parsed.GetValue(run.Out)!, parsed.GetValue(full) ? "necessity-full" : "necessity");
            if (Console.IsOutputRedirected) AnsiConsole.Profile.Width = 200;

            var first = plan.Runs[0];
            var gpt = first.Settings<GptSettings>();
            AnsiConsole.MarkupLineInterpolated(
                $"[bold]necessity study[/]: {NecessityStudy.Describe(plan, parsed.GetValue(crossed))}, {layout}; d_model {gpt.Shape.DModel}, n_head {gpt.Shape.NHead}, block_size {gpt.Shape.BlockSize}, batch {first.Train.BatchSize}, evaluations every {first.Train.EvalInterval} steps -> {outDir}");
            var corpus = CorpusLoader.Load(gpt.Data, gpt.Shape.BlockSize);
            double unigram = NecessityStudy.UnigramLoss(corpus);

            var clock = Stopwatch.StartNew();
            using var store = ResultsStore.Open(outDir);
            using var stop = new StopSignals(); // Ctrl-C or SIGTERM: the runs in flight stop between steps and are kept to resume
            var outcome = TunedStudy.Run(plan, parsed.GetValue(crossed), store, outDir, n, stop);
            AnsiConsole.MarkupLineInterpolated(
                $"{outcome.Total} runs: {outcome.Skipped} already finished, {outcome.Trained} trained, {outcome.Unfinished.Count} unfinished, in {clock.Elapsed.TotalSeconds:0} s");
            if (stop.Requested) return 1;

            var data = TunedSweep.Load(store, outcome.Plan);
            var results = NecessityTable.Arms(data, unigram);
            var lines = NecessityTable.Lines(results, unigram);
            var health = RankCollapse.Rows(Tuning.AtBest(data, Tuning.Select(data)));
            string markdown = NecessityTable.Markdown(results) + "\n" + string.Join("\n", lines) + "\n\n" + NecessityTable.HealthMarkdown(health);
            Console.WriteLine(NecessityTable.Markdown(results));   // tables and verdicts unwrapped, whatever the terminal's width
            Console.WriteLine(NecessityTable.HealthMarkdown(health));
            AtomicFile.WriteText(Path.Combine(outDir, "necessity.csv"), NecessityTable.Csv(results));
            AtomicFile.WriteText(Path.Combine(outDir, "necessity.md"), markdown);
            long peak = data.Runs.Select(r => r.Run.PeakRssBytes).DefaultIfEmpty(0).Max();
            AnsiConsole.MarkupLineInterpolated(
                $"wall time {clock.Elapsed.TotalMinutes:0.0} min for the {outcome.Trained} runs trained now; largest peak RSS of a run {peak / 1048576.0:0} MiB; tables: {Path.Combine(outDir, "necessity.csv")}, necessity.md; full report with stream health: reslab report {outDir} --baseline {NecessityStudy.Residual}");
            foreach (var line in lines) Console.WriteLine(line);
            return outcome.Unfinished.Count == 0 ? 0 : 1;
        });
        study.Subcommands.Add(necessity);
        return study;
    }
}
