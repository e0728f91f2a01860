using System.CommandLine;
using ResidualLab.Checkpoints;
using ResidualLab.Families;
using ResidualLab.Results;

namespace ResidualLab.Cli.Commands;

/// <summary>reslab export RUN [--fuse] [--format safetensors|results] [--out FILE] [--results DIR]</summary>
internal static class ExportCommand
{
    public static Command Build()
    {
        var run = new Argument<string>("run") { Description = "a run id (a folder under RESULTS/runs) or a run folder" };
        var format = new Option<string>("--format") { Description = "safetensors (the model, a checkpoint PyTorch opens) or results (the run folder's metrics.jsonl and result.json, written again from the results store)", DefaultValueFactory = _ => "safetensors" };
        var output = new Option<string?>("--out") { Description = "the file to write (default: model.safetensors in the run folder)" };
        var results = new Option<string>("--results") { Description = "results folder", DefaultValueFactory = _ => "results" };
        var fuse = new Option<bool>("--fuse") { Description = "a RepVGG run re-parameterised for inference: its plain net of 3x3 convolutions with biases (default file: model-fused.safetensors)" };
        var command = new Command("export", "Write a finished run's model as a checkpoint that PyTorch opens (a GPT in nanoGPT's names, a vision model in its own), or its result files from the results store.");
        command.Arguments.Add(run);
        command.Options.Add(fuse);
        command.Options.Add(format);
        command.Options.Add(output);
        command.Options.Add(results);
        command.SetAction(parsed =>
        {
            string chosen = parsed.GetValue(format)!;
            if (chosen is not ("safetensors" or "results"))
                throw new ConfigException($"--format '{chosen}' is not supported{Suggest.DidYouMean(chosen, ["safetensors", "results"])}; the formats are safetensors and results");
            string dir = RunFiles.FindRunFolder(parsed.GetValue(run)!, parsed.GetValue(results)!);
            if (chosen == "results")
                return ExportResults(dir);
            bool fused = parsed.GetValue(fuse);
            string path = Path.GetFullPath(parsed.GetValue(output) ?? Path.Combine(dir, fused ? "model-fused.safetensors" : "model.safetensors"));
            if (fused || VisionExport.ConfigOf(dir).Model is VisionSettings)
            {
                string written;
                try
                {
                    StorageException.CreateFolder(Path.GetDirectoryName(path)!);
                    written = fused ? VisionExport.Fused(dir, path) : VisionExport.Write(dir, path);
                }
                catch (StorageException ex)
                {
                    throw ex.With(alternative: "pass --out elsewhere", then: "run the same command again", kept: "the run folder is unchanged");
                }
                Console.WriteLine($"{written} -> {path}");
                return 0;
            }
            var checkpoint = RunExport.Load(dir);
            using var model = checkpoint.Model;
            try
            {
                StorageException.CreateFolder(Path.GetDirectoryName(path)!);
                checkpoint.Save(path);
            }
            catch (StorageException ex)
            {
                throw ex.With(alternative: "pass --out elsewhere", then: "run the same command again", kept: "the run folder is unchanged");
            }
            Console.WriteLine($"{checkpoint.Config.Label} (run {checkpoint.Config.RunId}, {model.ParameterCount():N0} parameters) -> {path}");
            return 0;
        });
        return command;
    }

    /// <summary>metrics.jsonl and result.json of the run folder <paramref name="dir"/>, written again from the store of its results folder.</summary>
    static int ExportResults(string dir)
    {
        var config = ResidualLab.Config.RunConfig.From(ResidualLab.Config.ConfigValues.FromCanonical(
            File.ReadAllText(Path.Combine(dir, RunFiles.Config)), Path.Combine(dir, RunFiles.Config)));
        using var store = ResidualLab.Results.Store.ResultsStore.OpenExisting(RunFiles.ResultsFolderOf(dir));
        try
        {
            RunFiles.Export(store, config.RunId, dir);
        }
        catch (StorageException ex)
        {
            throw ex.With(alternative: null, then: "run the same command again", kept: "the results store is unchanged");
        }
        Console.WriteLine($"{config.Label} (run {config.RunId}) -> {Path.Combine(dir, RunFiles.Metrics)}, {RunFiles.Result}");
        return 0;
    }
}
