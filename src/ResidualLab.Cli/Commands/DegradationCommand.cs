using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using ResidualLab.Data;
using ResidualLab.Families;
using ResidualLab.Experiments;
using ResidualLab.Training;
using ResidualLab.Training.Tasks;
using Spectre.Console;

namespace ResidualLab.Cli.Commands;

/// <summary>
/// reslab demo degradation: plain vs residual nets as depth grows on Fashion-MNIST (He et al. 2016,
/// sec. 4.2), with the first-to-last gradient-norm ratio of every net; prints the table and the verdicts.
/// </summary>
internal static class DegradationCommand
{
    public const string Preset = "degradation";

    public static Command Build()
    {
        var seeds = new Option<int>("--seeds") { Description = "seeds per cell (1..K)", DefaultValueFactory = _ => 2 };
        var full = new Option<bool>("--full") { Description = "the paper's width and schedule (16 channels, 64k steps, all images, random crops): hours to days on a CPU" };
        var cnnDepths = new Option<string>("--cnn-depths") { Description = "ResNet / plain depths (6n+2)", DefaultValueFactory = _ => "20,32,56" };
        var mlpDepths = new Option<string>("--mlp-depths") { Description = "MLP depths (2k+2); empty to skip the MLPs", DefaultValueFactory = _ => "4,16,64" };
        var mlpWidth = new Option<int>("--mlp-width") { Description = "hidden width of the MLPs", DefaultValueFactory = _ => 64 };
        var run = new RunOptions();
        var command = new Command("degradation", $"Plain vs residual nets as depth grows (preset '{Preset}'): the degradation problem.");
        foreach (var o in new Option[] { seeds, full, cnnDepths, mlpDepths, mlpWidth }) command.Options.Add(o);
        run.AddTo(command);
        command.SetAction(parsed =>
        {
            int k = parsed.GetValue(seeds);
            if (k < 1) throw new ConfigException($"--seeds must be at least 1, got {k}");
            int width = parsed.GetValue(mlpWidth);
            if (width < 1) throw new ConfigException($"--mlp-width must be at least 1, got {width}");
            if (parsed.GetValue(run.Data) is not null)
                throw new ConfigException("--data takes a text file; choose the image set with --set data.images=mnist");
            var values = RunOptions.LoadPreset(Preset);
            var plan = new DegradationPlan(parsed.GetValue(full), width);
            plan.ApplyTo(values);
            run.Apply(parsed, values); // --set applies to every run; the grid then sets family, scheme, depth and seed
            var grid = Degradation.Grid(values, plan, Depths("--cnn-depths", parsed.GetValue(cnnDepths)!), Depths("--mlp-depths", parsed.GetValue(mlpDepths)!),
                Enumerable.Range(1, k).Select(s => (long)s).ToList());
            if (grid.Count == 0) throw new ConfigException("--cnn-depths and --mlp-depths are both empty; e.g. --cnn-depths 20,56");
            string outDir = Path.Combine(parsed.GetValue(run.Out)!, "degradation");

            var first = grid[0].Config.Settings<VisionSettings>();
            var t = grid[0].Config.Train;
            var cnn = grid.FirstOrDefault(g => g.Arm.Kind == "cnn").Config?.Settings<VisionSettings>().Model;
            var mlp = grid.FirstOrDefault(g => g.Arm.Kind == "mlp").Config?.Settings<VisionSettings>().Model;
            AnsiConsole.MarkupLineInterpolated($"[bold]The degradation problem[/]: plain vs residual, {grid.Count} runs, {k} seed(s), {first.Images}");
            Console.WriteLine(plan.Full
                ? $"the paper's schedule (He et al. 2016, sec. 4.2): width {cnn?.Width}, {t.MaxIters} steps of {t.BatchSize}, lr {t.Lr} / 10 at 50% and 75%, all training images, random crops"
                : $"REDUCED to fit a CPU: CNN width {cnn?.Width} (channels {cnn?.Width}/{2 * cnn?.Width}/{4 * cnn?.Width}; paper 16/32/64), MLP width {mlp?.Width}, first {first.TrainImages:N0} training images, {t.MaxIters} steps of {t.BatchSize} (paper: 64,000 steps), lr {t.Lr} / 10 at 50% and 75%, {(first.Augment ? "random crops" : "no augmentation")}; --full gives the paper's schedule");

            var data = new DataCache();
            var images = data.Images(first.Images);
            AnsiConsole.MarkupLineInterpolated($"{images.Name}: {images.Train.Count:N0} training and {images.Test.Count:N0} test images, {images.Height}x{images.Width}, {images.Classes} classes");
            Directory.CreateDirectory(outDir);

            var clock = Stopwatch.StartNew();
            var runs = new List<DegradationRun>();
            TerminalProgress.Track(progress =>
            {
                foreach (var (arm, depth, cfg) in grid)
                {
                    ClassifierResult? classified = null;
                    RunExecutor.Execute(cfg, Path.Combine(outDir, "runs", cfg.RunId), progress.For(cfg.Label), data,
                        finished: (task, run) => classified = ((ImageClassificationTask)task).Result(run));
                    var result = classified!;
                    runs.Add(new DegradationRun(arm, depth, cfg, result));
                    var f = result.Final;
                    Console.WriteLine($"{cfg.Label}: train error {f?.TrainError:P1}, test error {f?.TestError:P1}, first/last grad ratio {result.AtInit.FirstToLast:0.###} at init, {result.DuringTraining.FirstToLast:0.###} in training, {result.Run.WallSeconds:0} s");
                    AtomicFile.WriteText(Path.Combine(outDir, "summary.csv"), Degradation.ToCsv(Degradation.Table(runs)));
                    AtomicFile.WriteText(Path.Combine(outDir, "curves.csv"), Degradation.CurvesCsv(runs));
                }
                return runs;
            });

            var rows = Degradation.Table(runs);
            var table = new Table().AddColumns("net", "depth", "seeds", "train loss", "train err", "test err", "batch err", "g1/gL init", "g1/gL train", "g1/gL end");
            string P(Summary s) => s.Values.Count < 2 ? (100 * s.Mean).ToString("0.00", CultureInfo.InvariantCulture) + "%"
                : $"{(100 * s.Mean).ToString("0.00", CultureInfo.InvariantCulture)} ± {(100 * s.Std).ToString("0.00", CultureInfo.InvariantCulture)}%";
            string G(Summary s) => s.Mean.ToString("G3", CultureInfo.InvariantCulture);
            foreach (var r in rows)
                table.AddRow(r.Arm.Name, r.Depth.ToString(CultureInfo.InvariantCulture), r.Seeds.ToString(CultureInfo.InvariantCulture),
                    r.TrainLoss.Show(), P(r.TrainError), P(r.TestError), P(r.BatchError), G(r.RatioAtInit), G(r.RatioDuringTraining), G(r.RatioAtEnd));
            if (Console.IsOutputRedirected) AnsiConsole.Profile.Width = Math.Max(AnsiConsole.Profile.Width, 140); // logs: no wrapped cells
            AnsiConsole.Write(table);
            Console.WriteLine("train err: evaluation mode, on the first eval_batches x batch_size training images; batch err: training mode, mean over the last evaluation interval's mini-batches; g1/gL: gradient norm of the first weight layer over the last (classifier)'s, at init, of the norms averaged over all steps, and averaged over the last interval's steps.");
            foreach (var line in Degradation.Verdicts(rows)) Console.WriteLine(line);
            var failed = runs.Where(r => r.Result.Run.Status != RunStatus.Done).ToList();
            foreach (var d in failed)
                AnsiConsole.MarkupLineInterpolated($"[yellow]{d.Config.Label}: {d.Result.Run.Status} ({d.Result.Run.Note})[/]");
            Console.WriteLine("published (CIFAR-10, He et al. 2016): plain-56 has higher training and test error than plain-20; ResNet-20 8.75%, ResNet-56 6.97% test error.");
            Console.WriteLine($"{runs.Count} runs in {clock.Elapsed.TotalMinutes:0.0} min, peak RSS {ProcessMemory.PeakRssBytes() / 1048576.0:0} MiB; table in {Path.Combine(outDir, "summary.csv")}, curves in {Path.Combine(outDir, "curves.csv")}, per-layer gradient norms in runs/*/classifier.json");
            return failed.Count == 0 ? 0 : 1;
        });
        return command;
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
