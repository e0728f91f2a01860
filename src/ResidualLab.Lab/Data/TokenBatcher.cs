using static TorchSharp.torch;

namespace ResidualLab.Data;

/// <summary>
/// Random contiguous windows of a token sequence, as nanoGPT's get_batch: x = data[i : i+T],
/// y = data[i+1 : i+T+1]. The offsets come from a seeded <see cref="SplitMix64"/>, so a batch stream is
/// reproducible and its position can be saved and restored.
/// </summary>
internal sealed class TokenBatcher(TokenSequence tokens, int batchSize, int blockSize, ulong seed) : IBatchSampler
{
    SplitMix64 _rng = new(seed);

    public ulong State { get => _rng.State; set => _rng = new SplitMix64 { State = value }; }

    /// <summary>A sampler over the same tokens at the same position: it draws the batches this one would draw next.</summary>
    public TokenBatcher Copy() => new(tokens, batchSize, blockSize, State);

    IBatchSampler IBatchSampler.Copy() => Copy();

    IBatch IBatchSampler.NextBatch() => NextBatch();

    public void MoveAfter(IBatch drawn) => State = ((TokenBatch)drawn).StateAfter;

    public void Write(BinaryWriter writer) => writer.Write(State);

    public void Read(BinaryReader reader) => State = reader.ReadUInt64();

    /// <summary>The next batch as managed arrays; makes no tensors, so it may run on any thread.</summary>
    public TokenBatch NextBatch()
    {
        var x = new long[batchSize * blockSize];
        var y = new long[batchSize * blockSize];
        int range = tokens.Length - blockSize - 1;
        for (int b = 0; b < batchSize; b++)
        {
            int start = (int)_rng.NextBelow((ulong)range + 1);
            for (int t = 0; t < blockSize; t++)
            {
                x[b * blockSize + t] = tokens[start + t];
                y[b * blockSize + t] = tokens[start + t + 1];
            }
        }
        return new TokenBatch(x, y, batchSize, blockSize, _rng.State);
    }

    public (Tensor X, Tensor Y) Next(Device device) => NextBatch().ToTensors(device);
}

/// <summary>One batch of windows, inputs and targets [batch, block] row by row, and the sampler's state after it.</summary>
/// <param name="StateAfter">Where the batch after this one starts: the position a checkpoint records.</param>
internal sealed record TokenBatch(long[] Inputs, long[] Targets, int BatchSize, int BlockSize, ulong StateAfter) : IBatch
{
    /// <summary>Inputs and targets as int64 tensors [batch, block] on <paramref name="device"/>.</summary>
    public (Tensor Input, Tensor Target) ToTensors(Device device) =>
        (tensor(Inputs, [BatchSize, BlockSize]).to(device), tensor(Targets, [BatchSize, BlockSize]).to(device));
}

/// <summary>SplitMix64 (Steele et al. 2014): a tiny, fast generator whose whole state is one ulong.</summary>
internal struct SplitMix64(ulong seed)
{
    public ulong State = seed;

    public ulong Next()
    {
        ulong z = State += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    /// <summary>Uniform in [0, bound) without modulo bias (Lemire's method).</summary>
    public ulong NextBelow(ulong bound)
    {
        if (bound == 0) throw new ArgumentOutOfRangeException(nameof(bound));
        ulong threshold = (0 - bound) % bound;
        while (true)
        {
            ulong r = Next();
            ulong hi = Math.BigMul(r, bound, out ulong lo);
            if (lo >= threshold) return hi;
        }
    }
}
