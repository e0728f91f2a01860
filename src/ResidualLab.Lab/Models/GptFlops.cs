using ResidualLab.Connections;
using static TorchSharp.torch;

namespace ResidualLab.Models;

/// <summary>
/// Training FLOPs of one GPT step, from its shape, its connection scheme and its batch:
/// <code>
/// per token, forward:  F = 2 N_mm + 4 L T d + sum over the 2L sublayers of C_k + C_streams
/// per step, training:  3 F B T
/// </code>
/// with N_mm = 12 L d^2 + V d the weights used in matrix products (attention q, k, v and out: 4 d^2, less d^2 for each
/// projection a scheme removes (<see cref="AttentionShape"/>); MLP 8 d^2; the head tied to the embedding: V d), 4 T d per
/// layer the attention scores and weighted values at full context T (nanoGPT's count, which ignores the causal half), C_k
/// the connection's own work around
/// sublayer k (<see cref="ConnectionScheme.ForwardFlops"/>: norms, gates, mixing, additions) and C_streams its
/// expand and reduce. The backward pass counts twice the forward, as for a matrix product. Left out, the
/// same for every scheme: biases, GELU, softmax, the embedding lookup, the final LayerNorm, the loss,
/// value residual mixing, and the optimiser's update; also left out, a shaped attention's O(d) per token (its identity and
/// centring terms and the prior's row rescale).
/// </summary>
internal static class GptFlops
{
    /// <summary>Forward FLOPs per token of the model's matrix products: 2 N_mm + 4 L T d; <paramref name="connection"/> may remove
    /// attention projections.</summary>
    public static double MatmulForwardPerToken(GptConfig model, ConnectionScheme? connection = null)
    {
        double d = model.DModel;
        double removed = connection is null ? 0 : Gpt.AttentionShapes(model, connection)
            .Sum(shape => (shape.Value == ProjectionShape.Identity ? 1 : 0) + (shape.Output == ProjectionShape.Identity ? 1 : 0));
        double weights = (12.0 * model.NLayer - removed) * d * d + (double)model.VocabSize * d;
        return 2 * weights + 4.0 * model.NLayer * model.BlockSize * d;
    }

    /// <summary>Forward FLOPs per token of the connection around every sublayer, with the stream's expand and reduce.</summary>
    public static double ConnectionForwardPerToken(GptConfig model, ConnectionScheme connection)
    {
        int sublayers = 2 * model.NLayer;
        return Enumerable.Range(0, sublayers)
            .Sum(k => connection.ForwardFlops(new ConnectionSite(model.DModel, k, sublayers, NoNorm, SublayersPerLayer: 2)))
            + connection.StreamFlops(model.DModel);
    }

    /// <summary>Training FLOPs of one step of <paramref name="batchSize"/> sequences of the model's block size.</summary>
    public static double TrainingPerStep(GptConfig model, ConnectionScheme connection, int batchSize) =>
        3.0 * batchSize * model.BlockSize * (MatmulForwardPerToken(model, connection) + ConnectionForwardPerToken(model, connection));

    /// <summary>Connections count FLOPs from the site's shape alone; none builds its norm for it.</summary>
    static nn.Module<Tensor, Tensor> NoNorm() =>
        throw new InvalidOperationException("counting FLOPs builds no norm");
}
