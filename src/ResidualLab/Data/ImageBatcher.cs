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
/// </summary>
public sealed class ImageBatcher
{
    readonly ImageSplit _split;
    readonly int _batchSize;
    readonly int _padding;
    readonly Generator _generator;
    readonly Random _crops;
    readonly float[] _normalised;
    readonly long[] _shape;
    long[]? _order;
    int _next;
    int _epoch;

    public ImageBatcher(ImageSet set, ImageSplit split, int batchSize, ulong seed, int cropPadding = 0)
    {
        if (batchSize < 1) throw new ArgumentOutOfRangeException(nameof(batchSize));
        _split = split;
        _batchSize = Math.Min(batchSize, split.Count);
        _padding = cropPadding;
        _generator = new Generator(seed);
        _crops = new Random((int)(seed % int.MaxValue));
        using (var scope = NewDisposeScope())
            _normalised = set.Normalise(arange(256, ScalarType.Byte)).data<float>().ToArray();
        _shape = [_batchSize, .. split.Pixels.shape[1..]];
    }

    /// <summary>
    /// The next batch: images [b, c, h, w] normalised (and cropped), labels [b], and its epoch (0 for the
    /// first pass). Makes no tensors but the epoch's permutation, so it may run on any thread.
    /// </summary>
    public ImageBatch NextBatch()
    {
        if (_order is null || _next + _batchSize > _split.Count)
        {
            using (var order = randperm(_split.Count, generator: _generator)) _order = order.data<long>().ToArray();
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
        return new ImageBatch(images, labels, _shape, _epoch);
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

/// <summary>One batch of images [b, c, h, w] (normalised float32) and labels [b], and the epoch it belongs to.</summary>
public sealed record ImageBatch(float[] Images, long[] Labels, long[] Shape, int Epoch)
{
    /// <summary>Images (float32) and labels (int64) as tensors on <paramref name="device"/>.</summary>
    public (Tensor Images, Tensor Labels) ToTensors(Device device) =>
        (tensor(Images, Shape).to(device), tensor(Labels, [Labels.Length]).to(device));
}
