using ResidualLab.Checkpoints;
using ResidualLab.Hooks;
using ResidualLab.Models;
using static TorchSharp.torch;

namespace ResidualLab.Diagnostics;

/// <summary>
/// Writes a forward pass's activations at chosen hook points to a safetensors file under TransformerLens's
/// names (<see cref="HookNames"/>), with the input token ids as "input_ids" [b, t], so Python tools can load
/// them (safetensors.torch.load_file). Residual hooks of multi-stream schemes keep their stream axis
/// [b, t, s, d]; the metadata records the run, the scheme and the hook points.
/// </summary>
internal static class ActivationExport
{
    public const string InputIds = "input_ids";

    /// <param name="names">Hook points to write; null: every hook point of the model.</param>
    public static IReadOnlyList<string> Write(string path, Gpt model, Tensor idx, IReadOnlyCollection<string>? names, IReadOnlyDictionary<string, string> metadata)
    {
        var known = HookNames.Gpt(model.Blocks.Count).ToList();
        var unknown = names?.Where(n => !known.Contains(n)).ToList() ?? [];
        if (unknown.Count > 0)
            throw new ArgumentException($"unknown hook point '{unknown[0]}'; this model has {known[0]} ... {known[^1]} (blocks 0-{model.Blocks.Count - 1})");
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        model.eval();
        var (_, cache) = model.RunWithCache(idx, names is null ? null : names.Contains);
        var tensors = cache.Detached().Select(a => TensorBytes.FromTensor(a.Name, a.Activation)).Prepend(TensorBytes.FromTensor(InputIds, idx)).ToList();
        var meta = new Dictionary<string, string>(metadata) { ["hook_points"] = string.Join(",", cache.Names) };
        SafeTensors.Write(path, new SafeTensorsFile(meta, tensors));
        return cache.Names;
    }
}
