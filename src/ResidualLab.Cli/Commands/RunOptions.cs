using System.CommandLine;
using ResidualLab.Config;

namespace ResidualLab.Cli.Commands;

/// <summary>Options shared by the commands that train: overrides, data, device, threads, output folder.</summary>
internal sealed class RunOptions
{
    public Option<string[]> Set { get; } = new("--set")
    {
        Description = "override a config key: section.key=value (repeatable), e.g. --set model.n_layer=4",
        AllowMultipleArgumentsPerToken = false,
    };
    public Option<string?> Data { get; } = new("--data") { Description = "train on this UTF-8 text file instead of the default corpus" };
    public Option<string?> Device { get; } = new("--device") { Description = "cpu or cuda" };
    public Option<int?> Threads { get; } = new("--threads") { Description = "intra-op CPU threads (default: libtorch's choice)" };
    public Option<string> Out { get; } = new("--out") { Description = "results folder", DefaultValueFactory = _ => "results" };

    public RunOptions()
    {
        Out.Validators.Add(result =>
        {
            if (result.GetValueOrDefault<string>() is { } path && File.Exists(path))
                result.AddError($"--out '{path}' is a file; give a folder for the results (it is created if missing)");
        });
    }

    public void AddTo(Command command)
    {
        command.Options.Add(Set);
        command.Options.Add(Data);
        command.Options.Add(Device);
        command.Options.Add(Threads);
        command.Options.Add(Out);
    }

    /// <summary>Applies --set, --data, --device and --threads, in that order, to a config.</summary>
    public void Apply(ParseResult parsed, ConfigValues values)
    {
        foreach (var assignment in parsed.GetValue(Set) ?? []) values.Override(assignment);
        if (parsed.GetValue(Data) is { } data)
        {
            if (!File.Exists(data))
                throw new ConfigException($"--data '{data}': file not found; give the path of a UTF-8 text file");
            values.Set("data.path", Path.GetFullPath(data), "--data");
        }
        if (parsed.GetValue(Device) is { } device) values.Set("train.device", device, "--device");
        if (parsed.GetValue(Threads) is { } threads) values.Set("train.threads", (long)threads, "--threads");
    }

    /// <summary>Folder of the shipped presets (configs/*.toml next to the executable).</summary>
    public static string PresetFolder => Path.Combine(AppContext.BaseDirectory, "configs");

    public static IReadOnlyList<string> PresetNames() => Directory.Exists(PresetFolder)
        ? Directory.GetFiles(PresetFolder, "*.toml").Select(Path.GetFileNameWithoutExtension).OfType<string>().Order().ToList()
        : [];

    public static ConfigValues LoadPreset(string name)
    {
        string path = Path.Combine(PresetFolder, name + ".toml");
        if (!File.Exists(path))
        {
            var names = PresetNames();
            throw new ConfigException($"unknown preset '{name}'{Suggest.DidYouMean(name, names)}; presets: {string.Join(", ", names)}");
        }
        return ConfigValues.FromTomlFile(path);
    }
}
