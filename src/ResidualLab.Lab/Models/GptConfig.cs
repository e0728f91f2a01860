using ResidualLab.Layers;

namespace ResidualLab.Models;

/// <summary>A nanoGPT-style language model's shape. Names follow nanoGPT.</summary>
/// <param name="VocabSize">Set from the corpus (character level).</param>
/// <param name="Bias">Biases in Linear and LayerNorm layers, as GPT-2 (nanoGPT's default).</param>
/// <param name="ValueResidual">Attention layers after the first mix their values with the first layer's (ResFormer).</param>
/// <param name="Init">How the embeddings and the sublayers' matrices start (<c>model.init</c>).</param>
internal sealed record GptConfig(
    int VocabSize,
    int NLayer = 6,
    int DModel = 192,
    int NHead = 6,
    int BlockSize = 128,
    double Dropout = 0.0,
    bool Bias = true,
    bool ValueResidual = false,
    ModelInit Init = ModelInit.Gpt2);
