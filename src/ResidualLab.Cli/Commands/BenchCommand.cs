using System.CommandLine;
using System.Globalization;
using ResidualLab.Bench;
using ResidualLab.Config;
using ResidualLab.Data;
using ResidualLab.Experiments;
using ResidualLab.Families;
using ResidualLab.Native;
using Spectre.Console;

namespace ResidualLab.Cli.Commands;

/// <summary>
/// reslab bench [WORKLOAD] [--compare-pytorch]: speed and memory of fixed workloads (two GPTs and
/// ResNet-20), never part of the tests. With --compare-pytorch the PyTorch twin runs in the same
/// invocation, interleaved round by round, and the table gives the ratios. reslab bench connections
/// [--steps N] [--schemes a,b:key=value]: every scheme's step time and memory relative to pre-norm.
/// reslab bench suite (<see cref="BenchSuiteCommand"/>): every GPU measurement in one run, into files.
/// </summary>
internal static class BenchCommand
{
    /// <summary>The workloads by name, built on demand.</summary>
    static readonly IReadOnlyDictionary<string, Func<IBenchWorkload>> Workloads = new Dictionary<string, Func<IBenchWorkload>>
    {
        ["reference-gpt"] = () => GptWorkload.Reference(),
        ["seed-gpt"] = () => GptWorkload.Seed,
        ["gpt2-small"] = () => GptWorkload.Gpt2Small,
        ["resnet20"] = () => ResNetWorkload.ResNet20,
    };

    public static Command Build()
    {
        var workload = new Argument<string>("workload")
        {
            Description = "reference-gpt (6 layers, d 192, context 128, batch 32), seed-gpt (the seed experiment's 1 layer, d 128, context 64, batch 32), gpt2-small (for GPUs) or resnet20 (ResNet-20, 28x28 images, batch 128)",
            DefaultValueFactory = _ => "reference-gpt",
        };
        workload.AcceptOnlyFromAmong([.. Workloads.Keys]);
        var steps = new Option<int>("--steps") { Description = "timed steps per round", DefaultValueFactory = _ => 20 };
        var warmup = new Option<int>("--warmup") { Description = "untimed steps first", DefaultValueFactory = _ => 3 };
        var rounds = new Option<int>("--rounds") { Description = "interleaved rounds (each: ResidualLab, then PyTorch)", DefaultValueFactory = _ => 2 };
        var threads = new Option<int>("--threads") { Description = "CPU threads for both (0: all cores)", DefaultValueFactory = _ => 0 };
        var device = new Option<string>("--device") { Description = "cpu or cuda", DefaultValueFactory = _ => "cpu" };
        var compare = new Option<bool>("--compare-pytorch") { Description = "also run the PyTorch twin (Debian python3-torch) and print ratios" };
        var dtype = new Option<string>("--dtype")
        {
            Description = "GPT workloads: float32, or bfloat16 (bf16 matmul weights, fp32 master weights; meant for CUDA)",
            DefaultValueFactory = _ => "float32",
        };
        dtype.AcceptOnlyFromAmong("float32", "bfloat16");
        var onednn = new Option<string>("--onednn")
        {
            Description = "resnet20: libtorch's oneDNN CPU kernels on, off, or auto (train.onednn's default)",
            DefaultValueFactory = _ => "auto",
        };
        onednn.AcceptOnlyFromAmong("on", "off", "auto");
        var command = new Command("bench", "Benchmark fixed workloads (ms/step, tokens or images/s, model FLOP utilisation, memory); 'bench connections' compares the schemes; 'bench suite' runs every GPU measurement into files.");
        command.Arguments.Add(workload);
        command.Subcommands.Add(Connections());
        command.Subcommands.Add(Study());
        command.Subcommands.Add(BenchSuiteCommand.Build());
        foreach (var o in new Option[] { steps, warmup, rounds, threads, device, compare, dtype, onednn }) command.Options.Add(o);
        command.SetAction(parsed =>
        {
            int n = parsed.GetValue(steps), w = parsed.GetValue(warmup), r = parsed.GetValue(rounds);
            if (n < 3 || w < 1 || r < 1) throw new ConfigException("--steps must be >= 3, --warmup >= 1 and --rounds >= 1");
            int t = parsed.GetValue(threads) is > 0 and var given ? given : Environment.ProcessorCount;
            string dev = parsed.GetValue(device)!;
            bool withPeer = parsed.GetValue(compare);
            if (withPeer && dev != "cpu") throw new ConfigException("--compare-pytorch runs Debian's CPU PyTorch: use --device cpu");
            var load = Workloads[parsed.GetValue(workload)!]();
            string precision = parsed.GetValue(dtype)!;
            if (precision != "float32")
            {
                if (load is not GptWorkload gpt) throw new ConfigException($"--dtype {precision} is for the GPT workloads; {load.Name} trains in float32");
                if (withPeer) throw new ConfigException($"--compare-pytorch compares float32 training on the CPU; drop --dtype {precision}");
                load = gpt with { DType = precision };
            }
            string kernels = parsed.GetValue(onednn)!;
            if (kernels != "auto")
            {
                if (load is not ResNetWorkload resnet) throw new ConfigException($"--onednn is for the resnet20 workload; {load.Name} keeps libtorch's default");
                load = resnet with { OneDnn = kernels };
            }
            if (withPeer) PyTorchPeer.RequireInstalled();
            RunRounds(load, n, w, r, t, dev, withPeer);
            return 0;
        });
        return command;
    }

    /// <summary>
    /// Runs the workload <paramref name="rounds"/> times, each round followed by its PyTorch twin when
    /// asked, and prints one table: our best round's median step, the twin's best, and their ratios. The
    /// twin first tries each thread and OpenBLAS kernel layout (<see cref="PeerLayout.Candidates"/>) on a few steps and
    /// is then timed in its fastest, so the comparison is against PyTorch at its best on these cores.
    /// </summary>
    static void RunRounds(IBenchWorkload load, int steps, int warmup, int rounds, int threads, string device, bool withPeer)
    {
        TorchRuntime.SetThreads(threads);
        // The peak is measured before the first round and after each one, and the highest counts: on a
        // shared machine a single measurement can fall in a slow moment and inflate the utilisation.
        var peaks = new List<double> { MatmulPeak.MeasureFlops(device) };
        Console.WriteLine($"{load.Name}: {load.Description}; {device}, {threads} threads; measured fp32 matmul peak {peaks[0] / 1e9:0.0} GFLOP/s");
        Console.WriteLine($"CPU: {CpuIdentity.Host.Describe()}");

        var layout = withPeer ? FastestPeerLayout(load, threads) : null;
        var ours = new List<BenchResult>();
        var theirs = new List<PeerBenchResult>();
        for (int round = 0; round < rounds; round++)
        {
            ours.Add(load.Run(steps, warmup, device, threads));
            peaks.Add(MatmulPeak.MeasureFlops(device));
            Console.WriteLine($"round {round + 1}: ResidualLab {ours[^1].MedianStepMs:0.0} ms/step; matmul peak after it {peaks[^1] / 1e9:0.0} GFLOP/s");
            if (layout is null) continue;
            theirs.Add(PyTorchPeer.Bench(load.PeerScript, load.PeerArguments(steps, warmup, layout.TorchThreads), layout, TimeSpan.FromMinutes(30)));
            Console.WriteLine($"round {round + 1}: PyTorch {theirs[^1].TorchVersion} {theirs[^1].MedianStepMs:0.0} ms/step ({layout})");
        }
        if (rounds > 1)
            Console.WriteLine($"spread over rounds: ResidualLab {Spread(ours.Select(o => o.MedianStepMs))}" +
                              (theirs.Count > 1 ? $", PyTorch {Spread(theirs.Select(t => t.MedianStepMs))}" : ""));

        double peak = peaks.Max();
        var best = ours.MinBy(o => o.MedianStepMs)!;
        long peakRss = ours.Max(o => o.PeakRssBytes);
        var table = new Table().AddColumns("", "ms/step", $"{load.Unit}s/s", "MFU", "peak RSS", "RSS drift");
        table.AddRow("ResidualLab", F(best.MedianStepMs), F(best.ItemsPerSecond, "0"), $"{best.Utilisation(peak):P1}",
            Mib(peakRss), Mib(best.RssDriftBytes));
        if (theirs.Count > 0)
        {
            double peerMs = theirs.Min(x => x.MedianStepMs);
            long peerPeak = theirs.Max(x => x.PeakRssBytes);
            double peerItems = load.ItemsPerStep / (peerMs / 1000);
            double speed = peerMs / best.MedianStepMs;
            table.AddRow($"PyTorch ({layout})", F(peerMs), F(peerItems, "0"), $"{best.FlopsPerItem * peerItems / peak:P1}", Mib(peerPeak), Mib(theirs[^1].RssDriftBytes));
            table.AddRow("ratio", speed >= 1 ? $"{speed:0.00}x faster" : $"{1 / speed:0.00}x slower", "", "", $"{(double)peakRss / peerPeak:0.00}x", "");
        }
        AnsiConsole.Write(table);
        Console.WriteLine($"model FLOPs per {load.Unit} {best.FlopsPerItem / 1e6:0.0} M ({load.FlopsMethod}), {best.Parameters:N0} parameters; " +
                          $"medians of {steps} steps, best of {rounds} round(s); MFU against the highest of {peaks.Count} matmul peak measurements, {peak / 1e9:0.0} GFLOP/s");
    }

    /// <summary>Times the twin briefly in every layout (threads, OpenBLAS kernels) on <paramref name="cores"/> cores and returns the fastest.</summary>
    static PeerLayout FastestPeerLayout(IBenchWorkload load, int cores)
    {
        PeerLayout? best = null;
        double bestMs = double.MaxValue;
        foreach (var layout in PeerLayout.Candidates(cores, CpuIdentity.Host))
        {
            var trial = PyTorchPeer.Bench(load.PeerScript, load.PeerArguments(4, 1, layout.TorchThreads), layout, TimeSpan.FromMinutes(10));
            Console.WriteLine($"PyTorch layout {layout}: {trial.MedianStepMs:0.0} ms/step (4 steps)");
            if (trial.MedianStepMs < bestMs) (best, bestMs) = (layout, trial.MedianStepMs);
        }
        Console.WriteLine($"PyTorch times in its fastest layout, {best} (the twin alone runs without the workplace's {string.Join(" and ", PeerLayout.UnsetForTiming)})");
        return best!;
    }

    static string Spread(IEnumerable<double> stepMs)
    {
        var ms = stepMs.ToList();
        return $"{ms.Min():0.0}-{ms.Max():0.0} ms/step";
    }

    static Command Connections()
    {
        var steps = new Option<int>("--steps") { Description = "timed steps per scheme (interleaved rounds)", DefaultValueFactory = _ => 20 };
        var warmup = new Option<int>("--warmup") { Description = "untimed steps per scheme first", DefaultValueFactory = _ => 2 };
        var schemes = new Option<string?>("--schemes")
        {
            Description = "comma-separated schemes, each name[:key=value...] (default: every scheme and variant); pre-norm is always measured",
        };
        var run = new RunOptions();
        var command = new Command("connections",
            "Training step time and step memory of every connection scheme relative to pre-norm, on the reference GPT (6 layers, d 192, 6 heads, context 128, batch 32, character level, CPU), in one interleaved run.");
        command.Options.Add(steps);
        command.Options.Add(warmup);
        command.Options.Add(schemes);
        run.AddTo(command);
        command.SetAction(parsed =>
        {
            int n = parsed.GetValue(steps), w = parsed.GetValue(warmup);
            if (n < 1) throw new ConfigException($"--steps must be at least 1, got {n}");
            if (w < 1) throw new ConfigException($"--warmup must be at least 1 (the first step allocates the optimiser state), got {w}");
            var list = parsed.GetValue(schemes) is { } text
                ? text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(BenchScheme.Parse).ToList()
                : BenchScheme.Defaults;
            var values = new ConfigValues();
            run.Apply(parsed, values);
            var cfg = RunConfig.From(values);
            if (cfg.Device != "cpu") throw new ConfigException("reslab bench connections measures the CPU; drop --device");
            TorchRuntime.SetThreads(cfg.Threads);
            var gpt = cfg.Settings<GptSettings>();
            var corpus = CorpusLoader.Load(gpt.Data, gpt.Shape.BlockSize);
            var m = gpt.Shape;
            Console.WriteLine($"GPT {m.NLayer} layers, d_model {m.DModel}, {m.NHead} heads, block {m.BlockSize}, batch {cfg.Train.BatchSize}, vocab {corpus.VocabSize}; " +
                              $"{TorchSharp.torch.get_num_threads()} threads; {w} warm-up + {n} timed steps per scheme, interleaved");
            var rows = ConnectionBench.Run(cfg, corpus, list, n, w, msg => Console.Error.WriteLine(msg));
            // A Markdown table: readable in a terminal at any width, and pasteable into notes.
            Console.WriteLine("| scheme | parameters | step ms (median) | quartiles | x pre-norm | step memory MiB | x pre-norm |");
            Console.WriteLine("|---|---:|---:|---:|---:|---:|---:|");
            foreach (var r in rows)
                Console.WriteLine($"| {r.Label} | {r.Parameters.ToString("N0", CultureInfo.InvariantCulture)} | {F(r.MedianStepMs, "0")} | " +
                                  $"{F(r.StepMs25, "0")}-{F(r.StepMs75, "0")} | {F(r.StepTimeRatio, "0.00")} | " +
                                  $"{F(r.StepMemoryBytes / 1048576.0, "0")} | {F(r.StepMemoryRatio, "0.00")} |");
            return 0;
        });
        return command;
    }

    static Command Study()
    {
        var file = new Argument<string>("file") { Description = "a sweep: a TOML file with a [sweep] section, or a preset's name (connections, necessity, schemes, ...)" };
        var runs = new Option<int>("--runs") { Description = "runs of the sweep trained in each layout, spread through its grid (default: twice the cores)", DefaultValueFactory = _ => 2 * Environment.ProcessorCount };
        var keep = new Option<string?>("--out") { Description = "folder for the runs trained (default: a temporary folder, deleted at the end)" };
        var command = new Command("study",
            "Runs per hour of a sweep in every layout of runs at a time x threads that fills the cores: the same sample of its runs, at full length, trained in each layout in turn.");
        command.Arguments.Add(file);
        command.Options.Add(runs);
        command.Options.Add(keep);
        command.SetAction(parsed =>
        {
            int count = parsed.GetValue(runs);
            if (count < 1) throw new ConfigException($"--runs must be at least 1, got {count}");
            string path = SweepCommand.ResolveFile(parsed.GetValue(file)!);
            var plan = SweepGrid.Expand(ConfigValues.FromTomlFile(path));
            if (plan.Runs.Any(r => r.Device != "cpu")) throw new ConfigException($"{path}: reslab bench study measures CPU layouts; the sweep trains on {plan.Runs.First(r => r.Device != "cpu").Device}");
            var sample = StudyLayoutBench.Sample(plan.Runs, count);
            int cores = Environment.ProcessorCount;
            string root = parsed.GetValue(keep) ?? Directory.CreateTempSubdirectory("reslab-bench-study-").FullName;
            Console.WriteLine($"{Path.GetFileNameWithoutExtension(path)}: {sample.Count} of its {plan.Runs.Count} runs in each layout on {cores} cores; CPU: {CpuIdentity.Host.Describe()}");
            var timings = new List<LayoutTiming>();
            try
            {
                foreach (var layout in StudyLayout.Candidates(cores))
                {
                    var timing = StudyLayoutBench.Time(plan, sample, layout, Path.Combine(root, $"p{layout.Parallel}-t{layout.Threads}"), _ => { });
                    timings.Add(timing);
                    Console.WriteLine($"{layout}: {timing.Runs} runs in {timing.WallSeconds:0.0} s, {timing.RunsPerHour:0} runs/hour{(timing.Failed > 0 ? $", {timing.Failed} failed" : "")}");
                }
            }
            finally
            {
                if (parsed.GetValue(keep) is null) Directory.Delete(root, recursive: true);
            }
            Console.WriteLine(StudyLayoutBench.Markdown(timings));
            var auto = StudyLayout.Auto(plan.Runs.Count, "cpu", cores);
            Console.WriteLine($"reslab sweep's default for this sweep: {auto} (--parallel 0)");
            return timings.Any(t => t.Failed > 0) ? 1 : 0;
        });
        return command;
    }

    static string F(double x, string format = "0.0") => x.ToString(format, CultureInfo.InvariantCulture);
    static string Mib(long bytes) => $"{bytes / 1048576.0:0} MiB";
}
