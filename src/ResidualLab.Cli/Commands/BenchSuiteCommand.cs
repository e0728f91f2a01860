using System.CommandLine;
using ResidualLab.Bench;

namespace ResidualLab.Cli.Commands;

/// <summary>
/// reslab bench suite --out DIR [--device cuda|cpu] [--tiny]: every GPU measurement in one run (ResidualLab
/// in fp32 and bf16, the PyTorch twin eager and compiled, mHC against pre-norm), written to DIR/bench.json
/// and DIR/bench.md. A measurement that cannot run or fails is a row saying why; the suite goes on.
/// </summary>
internal static class BenchSuiteCommand
{
    public static Command Build()
    {
        var output = new Option<string>("--out") { Description = "folder for bench.json and bench.md (created if missing)", Required = true };
        var device = new Option<string>("--device") { Description = "cuda or cpu", DefaultValueFactory = _ => "cuda" };
        device.AcceptOnlyFromAmong("cuda", "cpu");
        var tiny = new Option<bool>("--tiny") { Description = "tiny sizes (2 layers, d 64, context 32, batch 4) and few steps: checks the setup in under a minute" };
        var steps = new Option<int?>("--steps") { Description = "timed steps per round (default 20; 3 with --tiny)" };
        var warmup = new Option<int?>("--warmup") { Description = "untimed steps first (default 5; 1 with --tiny)" };
        var rounds = new Option<int?>("--rounds") { Description = "interleaved rounds (default 3; 2 with --tiny)" };
        var threads = new Option<int>("--threads") { Description = "CPU threads for both (0: all cores)", DefaultValueFactory = _ => 0 };
        var python = new Option<string>("--python")
        {
            Description = "the Python whose PyTorch runs the twins (CUDA needs a CUDA build)",
            DefaultValueFactory = _ => PyTorchPeer.Python,
        };
        var command = new Command("suite",
            "Every GPU measurement in one run: GPT-2 small in fp32 and bf16 (ResidualLab, PyTorch eager, torch.compile) and mHC (n = 4) " +
            "against pre-norm; writes bench.json and bench.md.");
        foreach (var o in new Option[] { output, device, tiny, steps, warmup, rounds, threads, python }) command.Options.Add(o);
        command.SetAction(parsed =>
        {
            bool isTiny = parsed.GetValue(tiny);
            var defaults = SuiteSettings.Defaults(isTiny);
            int n = parsed.GetValue(steps) ?? defaults.Steps, w = parsed.GetValue(warmup) ?? defaults.Warmup, r = parsed.GetValue(rounds) ?? defaults.Rounds;
            if (n < 3 || w < 1 || r < 1) throw new ConfigException("--steps must be >= 3, --warmup >= 1 and --rounds >= 1");
            int t = parsed.GetValue(threads) is > 0 and var given ? given : Environment.ProcessorCount;
            var settings = new SuiteSettings(parsed.GetValue(device)!, isTiny, n, w, r, t, parsed.GetValue(python)!);
            string dir = parsed.GetValue(output)!;

            var report = BenchSuite.Run(settings, msg => Console.Error.WriteLine(msg));
            SuiteFiles.Write(dir, report);
            Console.Write(SuiteFiles.Markdown(report));
            Console.WriteLine($"wrote {Path.Combine(dir, SuiteFiles.JsonName)} and {Path.Combine(dir, SuiteFiles.MarkdownName)}");
            return 0;
        });
        return command;
    }
}
