namespace ResidualLab.Tests.Cli;

/// <summary>Each user-facing failure ends in one clear line and exit code 2, never a stack trace.</summary>
[Trait(Slow.Category, Slow.Value)]
public class BadInputTests
{
    static readonly string[] Tiny = ["--set", "model.block_size=16", "--set", "model.d_model=16", "--set", "model.n_head=2", "--set", "train.max_iters=1"];

    static string File_(string name, byte[] bytes)
    {
        string path = Path.Combine(TestSupport.TempDir(), name);
        File.WriteAllBytes(path, bytes);
        return path;
    }

    public static TheoryData<string, string[], string> Cases()
    {
        var data = new TheoryData<string, string[], string>
        {
            { "wrong type", ["train", "--set", "train.batch_size=big"], "'train.batch_size' must be an integer" },
            { "out of range", ["train", "--set", "train.lr=-1"], "'train.lr' must be in (0," },
            { "depth 0", ["train", "--set", "model.n_layer=0"], "'model.n_layer' must be in [1," },
            { "missing config", ["train", "--config", "/no/such.toml"], "config file '/no/such.toml' does not exist" },
            { "unknown preset", ["train", "--preset", "seed-1layr"], "did you mean 'seed-1layer'" },
            { "bad override syntax", ["train", "--set", "model.n_layer"], "expected section.key=value" },
            { "key without section", ["train", "--set", "lr=0.1"], "needs its section" },
            { "unknown device", ["train", "--device", "tpu"], "must be cpu or cuda" },
            { "no checkpoint kept", ["train", "--set", "train.keep_checkpoints=0"], "'train.keep_checkpoints' must be in [1, 1000], got 0" },
            { "unknown dtype", ["train", "--set", "train.dtype=bfloat61"], "'train.dtype' must be float32 or bfloat16, got 'bfloat61' (did you mean 'bfloat16'?)" },
            { "bf16 vision model", ["train", "--set", "model.name=resnet", "--set", "train.dtype=bfloat16"], "train.dtype = bfloat16 is for the GPT only" },
            { "bad depths", ["demo", "--depths", "1,x"], "'x' is not a positive integer" },
            { "unknown subcommand", ["trian"], "trian" },
            { "probe without a probe", ["probe", "/no/such/run"], "choose a probe: --lesion, --logit-lens, --tuned-lens, --dla, --patching, --streams or --export-activations FILE" },
            { "probe of a missing run", ["probe", "/no/such/run", "--lesion"], "run '/no/such/run' not found" },
            { "shortcut-free scheme on a vision model", ["train", "--set", "model.name=resnet", "--set", "connection.name=e-spa"], "connection 'e-spa' does not apply to the vision models: it needs a causal attention sublayer" },
            { "norm on a norm-free scheme", ["train", "--set", "connection.name=e-spa", "--set", "connection.norm=true"], "option 'norm' contradicts 'e-spa'" },
            { "value residual without value projections", ["train", "--set", "connection.name=sas", "--set", "model.value_residual=true"], "'sas' removes the value projections" },
            { "TAT target out of range", ["train", "--set", "connection.name=u-spa", "--set", "connection.eta=1.5"], "u-spa: eta must be in" },
            { "hooks without an export", ["probe", "/no/such/run", "--dla", "--hooks", "blocks.0.hook_resid_pre"], "--hooks selects what --export-activations writes" },
        };
        data.Add("empty corpus", ["train", "--data", File_("empty.txt", []), .. Tiny], "is empty");
        data.Add("corpus shorter than the context", ["train", "--data", File_("short.txt", "just a few words here"u8.ToArray()), .. Tiny], "too short for block_size 16");
        data.Add("not UTF-8", ["train", "--data", File_("latin1.txt", [.. "na"u8.ToArray(), 0xEF, 0xF1, .. "ve"u8.ToArray()]), .. Tiny], "not valid UTF-8");
        data.Add("data is a folder", ["train", "--data", TestSupport.TempDir(), .. Tiny], "file not found");
        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Bad_input_gives_one_line_and_exit_2(string what, string[] args, string expected)
    {
        var line = CliProcess.AssertOneLineError(CliProcess.Run(args));
        Assert.True(line.Contains(expected), $"{what}: '{line}' lacks '{expected}'");
    }

    [Fact]
    public void Corrupt_cached_corpus_is_reported_with_the_fix()
    {
        string cache = TestSupport.TempDir();
        Directory.CreateDirectory(Path.Combine(cache, "corpora"));
        File.WriteAllText(Path.Combine(cache, "corpora", "moby-dick-0.2.3.txt"), "Call me Ishmael. (truncated)");
        var o = CliProcess.Run(["train", .. Tiny], new Dictionary<string, string> { ["RESLAB_CACHE"] = cache });
        var line = CliProcess.AssertOneLineError(o);
        Assert.Contains("sha256 mismatch", line);
        Assert.Contains("delete it", line);
    }

    [Fact]
    public void Verbose_shows_the_stack_trace()
    {
        var o = CliProcess.Run(["train", "--set", "train.lr=-1", "--verbose"]);
        Assert.Equal(2, o.ExitCode);
        Assert.Contains("ConfigException", o.StdErr);
    }
}
