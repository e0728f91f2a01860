using static TorchSharp.torch;

namespace ResidualLab.Hooks;

// Axes: b batch, t position, s streams (multi-stream schemes only), d model width.

/// <summary>
/// The hook points of the GPT, named as TransformerLens names them, so analyses and exported activations
/// read the same as theirs. Residual hooks hold the scheme's whole stream: [b, t, d], or [b, t, s, d] for
/// a multi-stream scheme; sublayer outputs and the final norm are [b, t, d]. A position's hooks are named
/// by the position in the stack, which is the block's own index unless blocks are reordered.
/// </summary>
public static class HookNames
{
    /// <summary>The stream entering block <paramref name="block"/>.</summary>
    public static string ResidPre(int block) => $"blocks.{block}.hook_resid_pre";
    /// <summary>The attention sublayer's output of block <paramref name="block"/>, [b, t, d].</summary>
    public static string AttnOut(int block) => $"blocks.{block}.hook_attn_out";
    /// <summary>The stream between the attention and the MLP of block <paramref name="block"/>.</summary>
    public static string ResidMid(int block) => $"blocks.{block}.hook_resid_mid";
    /// <summary>The MLP sublayer's output of block <paramref name="block"/>, [b, t, d].</summary>
    public static string MlpOut(int block) => $"blocks.{block}.hook_mlp_out";
    /// <summary>The stream leaving block <paramref name="block"/>.</summary>
    public static string ResidPost(int block) => $"blocks.{block}.hook_resid_post";

    /// <summary>The final norm's output (weight and bias applied), what the unembedding reads.</summary>
    public const string FinalNormalized = "ln_final.hook_normalized";

    /// <summary>Every hook point of a GPT with <paramref name="blocks"/> blocks, in forward order.</summary>
    public static IEnumerable<string> Gpt(int blocks) =>
        Enumerable.Range(0, blocks).SelectMany(b => new[] { ResidPre(b), AttnOut(b), ResidMid(b), MlpOut(b), ResidPost(b) })
            .Append(FinalNormalized);

    /// <summary>The residual hook points only (resid_pre, resid_mid, resid_post of every block).</summary>
    public static IEnumerable<string> Residual(int blocks) =>
        Enumerable.Range(0, blocks).SelectMany(b => new[] { ResidPre(b), ResidMid(b), ResidPost(b) });
}

/// <summary>A hook: given a hook point's name and activation, returns the activation the forward pass goes on with
/// (the same tensor to only read it, another of the same shape to patch it).</summary>
public delegate Tensor Hook(string name, Tensor activation);

/// <summary>
/// The hooks of one forward pass, each on the hook points a filter selects, applied in the order added.
/// A model calls <see cref="Run"/> at each of its hook points and never asks what is attached.
/// </summary>
public sealed class HookSet
{
    readonly List<(Func<string, bool> Applies, Hook Hook)> _hooks = [];

    /// <summary>Attaches <paramref name="hook"/> at the hook point <paramref name="name"/>.</summary>
    public HookSet Add(string name, Hook hook) => Add(n => n == name, hook);

    /// <summary>Attaches <paramref name="hook"/> at every hook point <paramref name="applies"/> selects.</summary>
    public HookSet Add(Func<string, bool> applies, Hook hook)
    {
        _hooks.Add((applies, hook));
        return this;
    }

    /// <summary>Records the activations at the hook points <paramref name="applies"/> selects into <paramref name="cache"/>.</summary>
    public HookSet Cache(ActivationCache cache, Func<string, bool>? applies = null) =>
        Add(applies ?? (_ => true), (name, x) =>
        {
            cache.Set(name, x);
            return x;
        });

    /// <summary>The activation at hook point <paramref name="name"/> after every hook attached there, in order.</summary>
    public Tensor Run(string name, Tensor activation)
    {
        foreach (var (applies, hook) in _hooks)
            if (applies(name))
                activation = hook(name, activation);
        return activation;
    }
}

/// <summary>
/// Activations by hook point name, in the order the forward pass produced them. It holds the tensors of
/// the forward pass itself (still in the autograd graph when gradients were on), so a caller can also
/// ask for their gradients; <see cref="Detached"/> gives copies to keep.
/// </summary>
public sealed class ActivationCache
{
    readonly Dictionary<string, Tensor> _activations = [];
    readonly List<string> _order = [];

    /// <summary>The activation cached at <paramref name="name"/>.</summary>
    /// <exception cref="KeyNotFoundException">Nothing was cached there.</exception>
    public Tensor this[string name] => _activations.TryGetValue(name, out var x) ? x
        : throw new KeyNotFoundException($"no activation cached at '{name}'; cached: {string.Join(", ", _order.Take(8))}{(_order.Count > 8 ? ", ..." : "")}");

    /// <summary>The hook points cached, in forward order.</summary>
    public IReadOnlyList<string> Names => _order;

    /// <summary>Whether an activation was cached at <paramref name="name"/>.</summary>
    public bool Contains(string name) => _activations.ContainsKey(name);

    internal void Set(string name, Tensor activation)
    {
        if (!_activations.ContainsKey(name)) _order.Add(name);
        _activations[name] = activation;
    }

    /// <summary>Detached copies of every activation, in forward order.</summary>
    public IEnumerable<(string Name, Tensor Activation)> Detached() => _order.Select(n => (n, _activations[n].detach().clone()));
}
