using static TorchSharp.torch;

namespace ResidualLab.Data;

/// <summary>One split of an image set: raw pixels [n, 1, h, w] (uint8) and class labels [n] (int64).</summary>
internal sealed record ImageSplit(Tensor Pixels, Tensor Labels)
{
    public int Count => (int)Labels.shape[0];
}

/// <summary>
/// A labelled image set with its published train/test split. Pixels stay uint8 in memory; a batch is
/// normalised on the way out with the training split's mean and standard deviation.
/// </summary>
internal sealed record ImageSet(string Name, ImageSplit Train, ImageSplit Test, int Classes, double Mean, double Std)
{
    /// <summary>sha256 of the files the set was read from (<see cref="ImageSets.FromFolder"/>); empty for a set made in memory.</summary>
    public string Sha256 { get; init; } = "";

    public int Channels => (int)Train.Pixels.shape[1];
    public int Height => (int)Train.Pixels.shape[2];
    public int Width => (int)Train.Pixels.shape[3];

    /// <summary>uint8 pixels to float32, scaled to [0, 1], then standardised: (x / 255 - mean) / std.</summary>
    public Tensor Normalise(Tensor pixels) => pixels.to_type(ScalarType.Float32).div_(255.0).sub_(Mean).div_(Std);

    /// <summary>Builds a set from IDX arrays (images [n, h, w], labels [n]); checks that they agree.</summary>
    public static ImageSet FromIdx(string name, IdxArray trainImages, IdxArray trainLabels, IdxArray testImages, IdxArray testLabels)
    {
        Native.LabRuntime.EnsureLoaded();
        return FromSplits(name, Split(name, "train", trainImages, trainLabels), Split(name, "test", testImages, testLabels));
    }

    /// <summary>A set from its two splits: the classes are the labels seen, the mean and std the training pixels'.</summary>
    /// <exception cref="InvalidDataException">The splits differ in image size, or the training pixels do not vary (nothing to standardise by).</exception>
    public static ImageSet FromSplits(string name, ImageSplit train, ImageSplit test)
    {
        if (train.Pixels.shape[2] != test.Pixels.shape[2] || train.Pixels.shape[3] != test.Pixels.shape[3])
            throw new InvalidDataException($"{name}: train and test images differ in size");
        int classes = (int)Math.Max(train.Labels.max().item<long>(), test.Labels.max().item<long>()) + 1;
        // Checked on the integer pixels: in floating point the deviation of equal values can round to a tiny
        // positive number, which would blow the images up instead of turning them into NaN.
        byte lowest = train.Pixels.min().item<byte>(), highest = train.Pixels.max().item<byte>();
        if (lowest == highest)
            throw new InvalidDataException(
                $"{name}: every training pixel has the value {lowest} (standard deviation 0), so the images cannot be standardised; use a set whose training images vary");
        using var scaled = train.Pixels.to_type(ScalarType.Float64).div_(255.0);
        return new ImageSet(name, train, test, classes, scaled.mean().item<double>(), scaled.std().item<double>());
    }

    static ImageSplit Split(string name, string split, IdxArray images, IdxArray labels)
    {
        if (images.Shape.Length != 3) throw new InvalidDataException($"{name} {split}: images must be [n, h, w]");
        if (images.Count != labels.Count)
            throw new InvalidDataException($"{name} {split}: {images.Count:N0} images but {labels.Count:N0} labels");
        var pixels = tensor(images.Values, [images.Shape[0], 1, images.Shape[1], images.Shape[2]]).DetachFromDisposeScope();
        var classes = tensor(labels.Values, [labels.Count]).to_type(ScalarType.Int64).DetachFromDisposeScope();
        return new ImageSplit(pixels, classes);
    }
}
