using ResidualLab.Config;
using ResidualLab.Data;
using ResidualLab.Experiments;
using ResidualLab.Families;
using ResidualLab.Models;
using static TorchSharp.torch;

namespace ResidualLab.Checkpoints;

/// <summary>
/// A finished vision run's model as one safetensors file: the module's own parameter and buffer names, and in the
/// metadata <c>format</c> = "pt", <c>run_id</c> and <c>reslab.config</c> (the canonical config the model is rebuilt
/// from). <see cref="Fused"/> writes a RepVGG run re-parameterised (<see cref="RepVgg.Fuse"/>): its config is the plain
/// net without batch norm that the fused tensors fill, and <c>fused_from</c> names the run.
/// </summary>
internal static class VisionExport
{
    public const string FusedFromKey = "fused_from";

    /// <summary>The run's config from its folder's config.txt.</summary>
    public static RunConfig ConfigOf(string runDir)
    {
        string path = Path.Combine(runDir, "config.txt");
        return RunConfig.From(ConfigValues.FromCanonical(File.ReadAllText(path), path));
    }

    /// <summary>Writes the run's model as it was trained; returns what was written, in words.</summary>
    public static string Write(string runDir, string path)
    {
        var config = ConfigOf(runDir);
        using var model = Deployment.Load(config, new DataCache().Images(config.Settings<VisionSettings>().Images), runDir, CPU);
        Save(model, config.RunId, config.Canonical, path, []);
        return $"{config.Label} (run {config.RunId}, {model.ParameterCount():N0} parameters)";
    }

    /// <summary>
    /// Writes a RepVGG run re-parameterised into its plain net of 3x3 convolutions with biases; a run of any other model
    /// is refused (nothing of it is a parallel branch to fold). Returns what was written, in words.
    /// </summary>
    public static string Fused(string runDir, string path)
    {
        var config = ConfigOf(runDir);
        if (config.Model is not VisionSettings { Model.Family: "repvgg" } vision)
            throw new ConfigException(
                $"run {config.RunId} ({config.Label}) is a {config.ModelName} model: --fuse re-parameterises RepVGG runs (model.name = repvgg), whose parallel branches fold into one convolution; export this run without --fuse");
        using var branched = (RepVgg)Deployment.Load(config, new DataCache().Images(vision.Images), runDir, CPU);
        using var fused = branched.Fuse();
        var values = ConfigValues.FromCanonical(config.Canonical, "the fused net");
        values.Set("model.name", "plain", "--fuse");
        values.Set("model.batch_norm", false, "--fuse");
        var plain = RunConfig.From(values);
        Save(fused, config.RunId, plain.Canonical, path, new() { [FusedFromKey] = config.RunId });
        return $"{config.Label} (run {config.RunId}, {branched.ParameterCount():N0} parameters with branches) fused into {plain.Label.Split(' ')[0]} without batch norm ({fused.ParameterCount():N0} parameters)";
    }

    static void Save(ImageClassifier model, string runId, string canonical, string path, Dictionary<string, string> extra)
    {
        var tensors = model.state_dict().Select(kv => TensorBytes.FromTensor(kv.Key, kv.Value)).ToList();
        var metadata = new Dictionary<string, string>(extra) { ["format"] = "pt", ["run_id"] = runId, [GptCheckpoint.ConfigKey] = canonical };
        SafeTensors.Write(path, new SafeTensorsFile(metadata, tensors));
    }
}
