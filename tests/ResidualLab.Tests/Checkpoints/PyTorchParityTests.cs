using System.Globalization;
using System.Text.RegularExpressions;
using ResidualLab.Experiments;
using ResidualLab.Processes;
using ResidualLab.Tests.Cli;
using Xunit.Abstractions;

namespace ResidualLab.Tests.Checkpoints;

/// <summary>
/// A trained pre-norm model, exported with reslab, loads into the nanoGPT model of
/// bench/pytorch/nanogpt_eval.py (Debian's PyTorch), which encodes the text with the checkpoint's tokenizer
/// (characters, or the learned byte-level BPE) and reports the same val loss.
/// </summary>
[Trait(Slow.Category, Slow.Value)]
public class PyTorchParityTests(ITestOutputHelper output)
{
    static string RepositoryRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "ResidualLab.slnx"))) dir = dir.Parent;
        return dir?.FullName ?? throw new InvalidOperationException("repository root not found above the test binaries");
    }

    static double ValLoss(string stdout) =>
        double.Parse(Regex.Match(stdout, @"val loss (\d+\.\d+)").Groups[1].Value, CultureInfo.InvariantCulture);

    [Theory]
    [InlineData("model.bias=true")]
    [InlineData("model.bias=false,model.dropout=0.1,model.n_head=4")]
    [InlineData("data.tokenizer=bpe:300")]
    public void Nanogpt_in_pytorch_reports_the_same_val_loss(string overrides)
    {
        TestSupport.RequirePackages("python3-torch", "libopenblas0", "python3-regex");
        string dir = TestSupport.TempDir();
        string corpus = Path.Combine(dir, "corpus.txt");
        // Accents and a character outside the Basic Multilingual Plane (two UTF-16 code units), with a BOM.
        File.WriteAllText(corpus, "\uFEFF" + string.Concat(Enumerable.Repeat(TestSupport.TinyText(4) + "café 😀 ✓\n", 10)));
        var config = TestSupport.TinyConfig(["model.n_layer=2", "train.max_iters=80", $"data.path={corpus}", .. overrides.Split(',')]);
        string runDir = Path.Combine(dir, "runs", config.RunId);
        var result = TestSupport.Execute(config, runDir);
        double trained = result.FinalEval!.ValLoss;

        string checkpoint = Path.Combine(dir, "exported.safetensors");
        var export = CliProcess.Run(["export", runDir, "--format", "safetensors", "--out", checkpoint]);
        Assert.True(export.ExitCode == 0, export.StdErr);
        var eval = CliProcess.Run(["eval", "--checkpoint", checkpoint, "--data", corpus, "--threads", "1"]);
        Assert.True(eval.ExitCode == 0, eval.StdErr);
        var python = RunPython(Path.Combine(RepositoryRoot(), "bench", "pytorch", "nanogpt_eval.py"), checkpoint, "--data", corpus, "--threads", "1");

        double reslab = ValLoss(eval.StdOut), pytorch = ValLoss(python);
        output.WriteLine($"trained {trained:0.000000}  reslab eval {reslab:0.000000}  pytorch {pytorch:0.000000}  |diff| {Math.Abs(pytorch - trained):E2}");
        Assert.Equal(trained, reslab, 6);   // the same definition, printed to 6 decimals
        Assert.True(Math.Abs(pytorch - trained) < 1e-4, $"PyTorch {pytorch} vs ResidualLab {trained}");
        Assert.True(trained < 2.6, $"val loss {trained}: the model did not learn, and the comparison would be weak");
    }

    static string RunPython(params string[] args)
    {
        // Debian's interpreter, which sees python3-torch (a python3 earlier on PATH may not).
        var python = ChildProcess.Run("/usr/bin/python3", args, TimeSpan.FromSeconds(120));
        Assert.False(python.TimedOut, "python timed out");
        Assert.True(python.ExitCode == 0, python.StdErr);
        return python.StdOut;
    }
}
