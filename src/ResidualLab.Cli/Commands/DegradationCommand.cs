using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using ResidualLab.Data;
using ResidualLab.Experiments;
using ResidualLab.Families;
using ResidualLab.Reports;
using ResidualLab.Results.Store;
using Spectre.Console;

namespace ResidualLab.Cli.Commands;

/// <summary>
/// reslab demo degradation: the degradation study (He et al. 2016, sec. 4.2), second edition. Trains every arm
/// (ResNet, plain, plain with delta-orthogonal init, plain with TAT, RepVGG; the same for a deep MLP) at each depth,
/// learning rate and seed into one results store (finished runs are skipped, so a killed study resumes), measures the
/// fused RepVGG, then prints the table and the verdicts, all read from the store.
/// </summary>
internal static class DegradationCommand
{
    public static Command Build()
    {
        var seeds = new Option<int>("--seeds") { Description = "seeds per arm and depth (1..K): the first at every learning rate, the others at the one chosen on it (all with --crossed)", DefaultValueFactory = _ => 3 };
        var full = new Option<bool>("--full") { Description = "the paper's width and schedule (16 channels, 64k steps, all images, random crops): days on a CPU" };
        var cnnDepths = new Option<string>("--cnn-depths") { Description = "ResNet / plain / RepVGG depths (6n+2)", DefaultValueFactory = _ => "20,56" };
        var mlpDepths = new Option<string>("--mlp-depths") { Description = "MLP depths (2k+2); empty to skip the MLPs", DefaultValueFactory = _ => "16,64" };
        var mlpWidth = new Option<int>("--mlp-width") { Description = "hidden width of the MLPs", DefaultValueFactory = _ => 64 };
        var arms = new Option<string>("--arms") { Description = $"the arms, comma-separated: {string.Join(", ", DegradationArm.Names)}", DefaultValueFactory = _ => string.Join(",", DegradationArm.Names) };
        var lrs = new Option<string>("--lrs") { Description = "the learning rates every arm is trained at (each judged at its best by validation)", DefaultValueFactory = _ => "0.0001,0.0003,0.001,0.003,0.01,0.03,0.1,0.3,1" };
        var parallel = new Option<int>("--parallel") { Description = StudyLayoutOption.Description, DefaultValueFactory = _ => 0 };
        var crossed = TunedStudy.CrossedOption();
        var estimate = new Option<bool>("--estimate") { Description = "time each model, print the study's expected wall time for its unfinished runs, and stop without training" };
        var run = new RunOptions();
        var command = new Command("degradation",
            $"Plain nets as depth grows, as He et al. built them and as TAT, delta-orthogonal init and RepVGG train them (preset '{Degradation.Preset}'), against the ResNet; each arm at its own learning rate; verdicts on test error.");
        foreach (var o in new Option[] { seeds, full, cnnDepths, mlpDepths, mlpWidth, arms, lrs, parallel, crossed, estimate }) command.Options.Add(o);
        run.AddTo(command);
        command.SetAction(parsed =>
        {
            int k = parsed.GetValue(seeds);
            if (k < 1) throw new ConfigException($"--seeds must be at least 1, got {k}");
            int width = parsed.GetValue(mlpWidth);
            if (width < 1) throw new ConfigException($"--mlp-width must be at least 1, got {width}");
            int n = parsed.GetValue(parallel);
            if (n < 0) throw new ConfigException($"--parallel must be 0 (auto) or at least 1, got {n}");
            if (parsed.GetValue(run.Data) is not null)
                throw new ConfigException("--data takes a text file; choose the image set with --set data.images=mnist");
            bool isFull = parsed.GetValue(full);
            var values = RunOptions.LoadPreset(Degradation.Preset);
            if (isFull) DegradationPlan.ApplyFull(values);
            run.Apply(parsed, values); // --set applies to every run; the plan then sets family, layers, depth, lr and seed
            var degradation = new DegradationPlan(width, Arms(parsed.GetValue(arms)!),
                Depths("--cnn-depths", parsed.GetValue(cnnDepths)!), Depths("--mlp-depths", parsed.GetValue(mlpDepths)!), Lrs(parsed.GetValue(lrs)!), k);
            if (degradation.Arms.All(a => degradation.DepthsOf(a).Count == 0))
                throw new ConfigException("the chosen arms have no depths: --cnn-depths and --mlp-depths give them, e.g. --cnn-depths 20,56");
            bool isCrossed = parsed.GetValue(crossed);
            var layout = StudyLayoutOption.Resolve(n, values, () => TunedStudy.Expected(Degradation.Plan(values, degradation), isCrossed));
            n = layout.Parallel;
            var plan = Degradation.Plan(values, degradation);
            string outDir = Path.Combine(parsed.GetValue(run.Out)!, isFull ? "degradation-full" : "degradation");
            if (Console.IsOutputRedirected) AnsiConsole.Profile.Width = 200;

            var first = plan.Runs[0].Settings<VisionSettings>();
            var t = plan.Runs[0].Train;
            var cnn = plan.Runs.Select(r => r.Settings<VisionSettings>().Model).FirstOrDefault(m => m.Family != "mlp");
            AnsiConsole.MarkupLineInterpolated($"[bold]The degradation problem, second edition[/]: {Degradation.Describe(plan, degradation, isCrossed)}, {layout} -> {outDir}");
            foreach (var arm in degradation.Arms) Console.WriteLine($"  {arm.Name}: {arm.Description}");
            Console.WriteLine(isFull
                ? $"the paper's schedule (He et al. 2016, sec. 4.2): width {cnn?.Width}, {t.MaxIters} steps of {t.BatchSize}, warmup {t.WarmupIters}, lr / 10 at 50% and 75%, all training images, random crops"
                : $"REDUCED to fit a CPU: CNN width {cnn?.Width} (channels {cnn?.Width}/{2 * cnn?.Width}/{4 * cnn?.Width}; paper 16/32/64), MLP width {width}, first {first.TrainImages:N0} training images, {t.MaxIters} steps of {t.BatchSize} (paper: 64,000), warmup {t.WarmupIters}, lr / 10 at 50% and 75%, {(first.Augment ? "random crops" : "no augmentation")}; --full gives the paper's schedule");

            var clock = Stopwatch.StartNew();
            using var store = ResultsStore.Open(outDir);
            if (parsed.GetValue(estimate))
            {
                var finished = store.Runs().Where(r => RunState.IsFinal(r.Status)).Select(r => r.RunId).ToHashSet();
                SweepCommand.PrintEstimate(TunedStudy.Expected(plan, isCrossed).Where(r => !finished.Contains(r.RunId)).ToList(), n);
                return 0;
            }
            using var stop = new StopSignals(); // Ctrl-C or SIGTERM: the runs in flight stop between steps and are kept to resume
            var outcome = TunedStudy.Run(plan, isCrossed, store, outDir, n, stop);
            AnsiConsole.MarkupLineInterpolated(
                $"{outcome.Total} runs: {outcome.Skipped} already finished, {outcome.Trained} trained, {outcome.Unfinished.Count} unfinished, in {clock.Elapsed.TotalMinutes:0.0} min");
            if (stop.Requested) return 1;
            plan = outcome.Plan;

            var data = TunedSweep.Load(store, plan);
            var images = new DataCache().Images(first.Images);
            foreach (var line in Degradation.MeasureDeployment(data, Tuning.Select(data), outDir, store, images)) AnsiConsole.WriteLine(line);
            data = TunedSweep.Load(store, plan);
            var rows = DegradationTable.Rows(data, Tuning.Select(data));
            var table = new Table().AddColumns(DegradationTable.Columns.Select(c => new TableColumn(Markup.Escape(c))).ToArray());
            foreach (var cells in DegradationTable.TableCells(rows)) table.AddRow(cells.Select(Markup.Escape).ToArray());
            AnsiConsole.Write(table);
            AtomicFile.WriteText(Path.Combine(outDir, "degradation.csv"), DegradationTable.Csv(rows));
            AtomicFile.WriteText(Path.Combine(outDir, "degradation.md"), DegradationTable.Markdown(rows));
            Console.WriteLine("err: error rates at each arm's learning rate chosen by final validation loss, mean over seeds (95% CI: Student's t); train err on the first eval_batches x batch_size training images, evaluation mode; g1/gL init: gradient norm of the first weight layer over the classifier's at step 0; us/image: median forward time per image of the ResNet and the RepVGG (branched and fused) of seed 1, timed interleaved in this process.");
            foreach (var line in DegradationTable.Verdicts(rows)) Console.WriteLine(line);
            Console.WriteLine("published (CIFAR-10, He et al. 2016): plain-56 has higher training and test error than plain-20; ResNet-20 8.75%, ResNet-56 6.97% test error.");
            var report = ReportWriter.Write(outDir, data.Runs.Any(r => r.Run.Connection == "residual") ? "residual" : data.Runs[0].Run.Connection);
            AnsiConsole.MarkupLineInterpolated(
                $"tables: {Path.Combine(outDir, "degradation.csv")}, degradation.md, written from {Path.Combine(outDir, ResultsStore.FileName)}; report with the gradient norms by layer at initialisation of every arm: {report.HtmlPath} ({report.Figures} figures)");
            return outcome.Unfinished.Count == 0 ? 0 : 1;
        });
        return command;
    }

    static List<DegradationArm> Arms(string text)
    {
        var arms = new List<DegradationArm>();
        foreach (var name in text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            arms.Add(DegradationArm.All.FirstOrDefault(a => a.Name == name)
                     ?? throw new ConfigException($"--arms: unknown arm '{name}'{Suggest.DidYouMean(name, DegradationArm.Names)}; arms: {string.Join(", ", DegradationArm.Names)}"));
        if (arms.Count == 0) throw new ConfigException($"--arms is empty; e.g. --arms resnet,plain,plain-tat");
        return arms.Distinct().ToList();
    }

    static List<double> Lrs(string text)
    {
        var lrs = new List<double>();
        foreach (var part in text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (!double.TryParse(part, NumberStyles.Float, CultureInfo.InvariantCulture, out double lr) || !(lr > 0) || !double.IsFinite(lr))
                throw new ConfigException($"--lrs '{text}': '{part}' is not a positive number; e.g. --lrs 0.01,0.03,0.1");
            lrs.Add(lr);
        }
        if (lrs.Count == 0) throw new ConfigException("--lrs is empty; e.g. --lrs 0.01,0.03,0.1");
        return lrs.Distinct().Order().ToList();
    }

    static List<int> Depths(string option, string text)
    {
        var depths = new List<int>();
        foreach (var part in text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (!int.TryParse(part, NumberStyles.Integer, CultureInfo.InvariantCulture, out int d) || d < 1)
                throw new ConfigException($"{option} '{text}': '{part}' is not a positive integer; e.g. {option} 20,56");
            depths.Add(d);
        }
        return depths;
    }
}
