using static TorchSharp.torch;

namespace ResidualLab.Data;

/// <summary>One training batch in managed arrays: an input and a target, made into tensors on the training thread.</summary>
internal interface IBatch
{
    (Tensor Input, Tensor Target) ToTensors(Device device);
}

/// <summary>
/// A seeded, resumable stream of training batches. <see cref="NextBatch"/> makes no tensors, so a copy
/// can draw ahead on a background thread (<see cref="BatchPrefetcher{T}"/>) while the original only
/// follows the batches used (<see cref="MoveAfter"/>): its position is what a checkpoint records.
/// </summary>
internal interface IBatchSampler
{
    IBatch NextBatch();

    /// <summary>A sampler at the same position: it draws the batches this one would draw next.</summary>
    IBatchSampler Copy();

    /// <summary>Moves to the position after <paramref name="drawn"/>, a batch drawn by a copy of this sampler.</summary>
    void MoveAfter(IBatch drawn);

    void Write(BinaryWriter writer);

    void Read(BinaryReader reader);
}
