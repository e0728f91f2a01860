using System.Text.RegularExpressions;
using ResidualLab.Connections;

namespace ResidualLab.Checkpoints;

/// <summary>
/// Names of a GPT's tensors in checkpoints. Every tensor gets nanoGPT's "transformer." prefix, so the
/// embeddings, attention, MLP and final norm carry nanoGPT's names for every scheme
/// (transformer.h.{i}.attn.c_attn.weight, transformer.ln_f.bias, ...), plus lm_head.weight, a copy of the
/// tied token embedding. The pre-norm GPT is nanoGPT's model, so its connection norms are renamed to
/// nanoGPT's ln_1 and ln_2 and a nanoGPT model loads the file with load_state_dict(strict=True). Other
/// schemes keep their own tensors' module names (transformer.h.{i}.conn_attn.norm.weight, ...).
/// </summary>
internal static partial class NanoGptNames
{
    /// <summary>The token embedding, which the GPT's head shares.</summary>
    public const string TokenEmbedding = "transformer.wte.weight";

    /// <summary>nanoGPT's output head: the same values as <see cref="TokenEmbedding"/>.</summary>
    public const string LmHead = "lm_head.weight";

    /// <summary>The checkpoint name of the model's state-dict entry <paramref name="moduleName"/> (e.g. "h.0.conn_attn.norm.weight").</summary>
    public static string ToCheckpoint(string moduleName, ConnectionScheme connection)
    {
        string name = "transformer." + moduleName;
        if (connection is not PreNormScheme) return name;
        // Pre-norm: the attention connection's norm is nanoGPT's ln_1 (before attention), the MLP's is ln_2.
        return PreNormNorm().Replace(name, m => $"{m.Groups["block"].Value}.{(m.Groups["sublayer"].Value == "attn" ? "ln_1" : "ln_2")}.");
    }

    [GeneratedRegex(@"^(?<block>transformer\.h\.\d+)\.conn_(?<sublayer>attn|mlp)\.norm\.")]
    private static partial Regex PreNormNorm();
}
