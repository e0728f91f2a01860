using System.Runtime.InteropServices;
using static TorchSharp.torch;

namespace ResidualLab.Data;

/// <summary>
/// Mini-batches of one split, reshuffled every epoch from a seed, normalised, and optionally augmented
/// with a random crop after zero padding (He et al. 2016, "Deep Residual Learning for Image
/// Recognition", sec. 4.2: 4 pixels padded on each side, a 32x32 crop; here the crop keeps the
/// image's own size). Padding happens after normalisation, so the pad value is the mean pixel.
/// A batch is made in managed arrays (so it can be made on a background thread): the pixels are
/// gathered and mapped through a table of <see cref="ImageSet.Normalise"/>'s value for each of the
/// 256 byte values, which gives libtorch's normalised values bit for bit.
/// Its position is the epoch, the offset in the epoch's order and the number of crop offsets drawn.
/// </summary>
internal sealed class ImageBatcher : IBatchSampler
{
    readonly ImageSet _set;
    readonly ImageSplit _split;
    readonly int _batchSize;
    readonly int _padding;
    readonly ulong _seed;
    readonly float[] _normalised;
    readonly long[] _shape;
    Generator _generator;
    Random _crops;
    long[]? _order;
    int _next;
    int _epoch;
    long _cropDraws;
    ImageSamplerPosition? _pending;

    public ImageBatcher(ImageSet set, ImageSplit split, int batchSize, ulong seed, int cropPadding = 0)
    {
        if (batchSize < 1) throw new ArgumentOutOfRangeException(nameof(batchSize));
        _set = set;
        _split = split;
        _batchSize = Math.Min(batchSize, split.Count);
        _padding = cropPadding;
        _seed = seed;
        (_generator, _crops) = Streams(seed);
        using (var scope = NewDisposeScope())
            _normalised = set.Normalise(arange(256, ScalarType.Byte)).data<float>().ToArray();
        _shape = [_batchSize, .. split.Pixels.shape[1..]];
    }

    static (Generator Order, Random Crops) Streams(ulong seed) => (new Generator(seed), new Random((int)(seed % int.MaxValue)));

    /// <summary>
    /// Where the next batch starts. Setting it is cheap: the shuffles and crops drawn before the position
    /// are replayed when the next batch is drawn (a training loop moves its sampler every step).
    /// </summary>
    public ImageSamplerPosition Position
    {
        get => _pending ?? new(_epoch, _next, _cropDraws);
        set => _pending = value;
    }

    void Replay()
    {
        if (_pending is not { } target || target == new ImageSamplerPosition(_epoch, _next, _cropDraws)) { _pending = null; return; }
        _pending = null;
        (_generator, _crops) = Streams(_seed);
        _order = null;
        int shuffles = target.Offset == 0 ? 0 : target.Epoch + 1;
        for (int i = 0; i < shuffles; i++) _order = Shuffle();
        for (long i = 0; i < target.CropDraws; i++) _crops.Next(2 * _padding + 1);
        (_epoch, _next, _cropDraws) = (target.Epoch, target.Offset, target.CropDraws);
    }

    long[] Shuffle()
    {
        using var order = randperm(_split.Count, generator: _generator);
        return order.data<long>().ToArray();
    }

    /// <summary>A sampler over the same images at the same position: it draws the batches this one would draw next.</summary>
    public ImageBatcher Copy() => new(_set, _split, _batchSize, _seed, _padding) { Position = Position };

    IBatchSampler IBatchSampler.Copy() => Copy();

    IBatch IBatchSampler.NextBatch() => NextBatch();

    public void MoveAfter(IBatch drawn) => Position = ((ImageBatch)drawn).After;

    public void Write(BinaryWriter writer)
    {
        var at = Position;
        writer.Write(at.Epoch);
        writer.Write(at.Offset);
        writer.Write(at.CropDraws);
    }

    public void Read(BinaryReader reader) => Position = new ImageSamplerPosition(reader.ReadInt32(), reader.ReadInt32(), reader.ReadInt64());

    /// <summary>
    /// The next batch: images [b, c, h, w] normalised (and cropped), labels [b], and its epoch (0 for the
    /// first pass). Makes no tensors but the epoch's permutation, so it may run on any thread.
    /// </summary>
    public ImageBatch NextBatch()
    {
        Replay();
        if (_order is null || _next + _batchSize > _split.Count)
        {
            _order = Shuffle();
            if (_next > 0) _epoch++;
            _next = 0;
        }
        int channels = (int)_shape[1], height = (int)_shape[2], width = (int)_shape[3];
        int size = channels * height * width;
        var images = new float[_batchSize * size];
        var labels = new long[_batchSize];
        ReadOnlySpan<byte> pixels = _split.Pixels.bytes;
        var allLabels = MemoryMarshal.Cast<byte, long>(_split.Labels.bytes);
        for (int i = 0; i < _batchSize; i++)
        {
            int index = (int)_order[_next + i];
            labels[i] = allLabels[index];
            var image = pixels.Slice(index * size, size);
            var target = images.AsSpan(i * size, size);
            // A crop of the padded image at (dy, dx) is the image shifted by (dy - padding, dx - padding).
            int dy = 0, dx = 0;
            if (_padding > 0)
            {
                dy = _crops.Next(2 * _padding + 1) - _padding;
                dx = _crops.Next(2 * _padding + 1) - _padding;
                _cropDraws += 2;
            }
            for (int c = 0; c < channels; c++)
                for (int y = 0; y < height; y++)
                {
                    int sy = y + dy;
                    for (int x = 0; x < width; x++)
                    {
                        int sx = x + dx;
                        bool inside = sy >= 0 && sy < height && sx >= 0 && sx < width;
                        target[(c * height + y) * width + x] = inside ? _normalised[image[(c * height + sy) * width + sx]] : 0f;
                    }
                }
        }
        _next += _batchSize;
        return new ImageBatch(images, labels, _shape, _epoch, Position);
    }

    /// <summary>The whole split in order, in batches, without augmentation (for evaluation).</summary>
    public static IEnumerable<(Tensor Images, Tensor Labels)> InOrder(ImageSet set, ImageSplit split, int batchSize, int limit, Device device)
    {
        int n = Math.Min(limit, split.Count);
        for (int start = 0; start < n; start += batchSize)
        {
            int size = Math.Min(batchSize, n - start);
            yield return (set.Normalise(split.Pixels.narrow(0, start, size)).to(device), split.Labels.narrow(0, start, size).to(device));
        }
    }
}

/// <summary>Where an <see cref="ImageBatcher"/> stands: the epoch, the offset in its order, the crop offsets drawn.</summary>
internal readonly record struct ImageSamplerPosition(int Epoch, int Offset, long CropDraws);

/// <summary>One batch of images [b, c, h, w] (normalised float32) and labels [b], the epoch it belongs to,
/// and the sampler's position after it.</summary>
internal sealed record ImageBatch(float[] Images, long[] Labels, long[] Shape, int Epoch, ImageSamplerPosition After) : IBatch
{
    /// <summary>Images (float32) and labels (int64) as tensors on <paramref name="device"/>.</summary>
    public (Tensor Input, Tensor Target) ToTensors(Device device) =>
        (tensor(Images, Shape).to(device), tensor(Labels, [Labels.Length]).to(device));
}
