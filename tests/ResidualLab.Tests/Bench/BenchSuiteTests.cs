using System.Runtime.Versioning;
using System.Text.Json;
using ResidualLab.Bench;
using ResidualLab.Tests.Cli;

namespace ResidualLab.Tests.Bench;

/// <summary>The benchmark suite end to end at tiny sizes on the CPU, the command lines that start it, and its wrapper script.</summary>
[Trait(Slow.Category, Slow.Value)]
public class BenchSuiteTests
{
    static readonly string[] Measured =
    [
        "residuallab-pre-norm-float32", "pytorch-eager-float32", "residuallab-mhc-float32",
        "residuallab-pre-norm-bfloat16", "pytorch-eager-bfloat16", "residuallab-mhc-bfloat16",
    ];

    static readonly string[] Skipped = ["pytorch-compile-float32", "pytorch-compile-bfloat16"]; // Debian's PyTorch 1.13

    [Fact]
    public void The_tiny_suite_on_the_cpu_writes_every_measurement_and_the_table()
    {
        PyTorchPeer.RequireInstalled();
        string dir = TestSupport.TempDir();

        int exit = global::ResidualLab.Cli.Cli.Run(["bench", "suite", "--tiny", "--device", "cpu", "--out", dir, "--threads", "1"]);

        Assert.Equal(0, exit);
        using var json = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "bench.json")));
        var rows = json.RootElement.GetProperty("rows").EnumerateArray().ToDictionary(r => r.GetProperty("name").GetString()!);
        Assert.Equal(Measured.Concat(Skipped).Order(), rows.Keys.Order());
        foreach (string name in Measured)
        {
            var row = rows[name];
            Assert.True(row.GetProperty("status").GetString() == "ok", $"{name}: {row.GetProperty("status")}");
            double ms = row.GetProperty("ms_per_step").GetDouble();
            Assert.True(double.IsFinite(ms) && ms > 0, $"{name}: {ms} ms/step");
            Assert.InRange(ms, row.GetProperty("spread_min_ms").GetDouble(), row.GetProperty("spread_max_ms").GetDouble());
            Assert.True(row.GetProperty("tokens_per_second").GetDouble() > 0, name);
            Assert.True(row.GetProperty("mfu").GetDouble() > 0, name);
            Assert.True(row.GetProperty("peak_memory_bytes").GetInt64() > 0, name);
            Assert.Equal("cpu", row.GetProperty("device").GetString());
            Assert.Equal(32, row.GetProperty("shape").GetProperty("block_size").GetInt32());
        }
        foreach (string name in Skipped)
        {
            var row = rows[name];
            Assert.StartsWith("skipped: torch.compile needs PyTorch >= 2.0", row.GetProperty("status").GetString());
            Assert.Equal(JsonValueKind.Null, row.GetProperty("ms_per_step").ValueKind);
        }
        Assert.Equal("mhc n=4", rows["residuallab-mhc-bfloat16"].GetProperty("connection").GetString());
        Assert.Equal("residuallab-pre-norm-bfloat16", rows["residuallab-mhc-bfloat16"].GetProperty("baseline").GetString());
        Assert.True(rows["residuallab-mhc-bfloat16"].GetProperty("ratio_to_baseline").GetDouble() > 0);
        Assert.Equal("PyTorch eager", rows["pytorch-eager-float32"].GetProperty("implementation").GetString());
        Assert.StartsWith("1.", json.RootElement.GetProperty("machine").GetProperty("pytorch").GetString());

        string md = File.ReadAllText(Path.Combine(dir, "bench.md"));
        Assert.Contains("Machine: CPU ", md);
        Assert.Contains("(family ", md);
        Assert.Contains("| measurement | implementation | connection | dtype | ms/step |", md);
        Assert.All(rows.Keys, name => Assert.Contains($"| {name} |", md));
    }

    [Theory]
    [InlineData("bench suite --tiny --device cpu --out X")]
    [InlineData("bench suite --out results/gpu-bench/2026-12-01-120000 --python /usr/bin/python3 --steps 10 --rounds 2")]
    public void The_documented_command_lines_parse(string line)
    {
        var parsed = global::ResidualLab.Cli.Cli.Build().Parse(line.Split(' '));

        Assert.Empty(parsed.Errors);
        Assert.Equal("suite", parsed.CommandResult.Command.Name);
    }

    [Fact]
    [SupportedOSPlatform("linux")]
    public void The_wrapper_script_builds_and_runs_the_suite_on_cuda()
    {
        string script = Path.Combine(TestSupport.RepoRoot(), "scripts", "gpu-bench.sh");
        string text = File.ReadAllText(script);

        Assert.True(File.GetUnixFileMode(script).HasFlag(UnixFileMode.UserExecute));
        Assert.Contains("set -euo pipefail", text);
        Assert.Contains("dotnet build", text);
        Assert.Contains("bench suite --out \"$out\" --python \"$python\" \"$@\"", text); // the device defaults to cuda
    }

    [Theory]
    [InlineData(new[] { "bench", "suite", "--tiny" }, "--out")]
    [InlineData(new[] { "bench", "suite", "--out", "x", "--device", "tpu" }, "tpu")]
    [InlineData(new[] { "bench", "suite", "--out", "x", "--steps", "1" }, "--steps must be >= 3")]
    public void Bad_suite_arguments_are_one_line_errors(string[] args, string expected) =>
        Assert.Contains(expected, CliProcess.AssertOneLineError(CliProcess.Run(args)));

    [Fact]
    public void A_missing_python_is_a_reason_not_a_crash()
    {
        var peer = PyTorchPeer.Probe("/nonexistent/python3", TimeSpan.FromSeconds(30));

        Assert.Null(peer.Version);
        Assert.Contains("/nonexistent/python3 cannot be started", peer.Problem);
    }
}
