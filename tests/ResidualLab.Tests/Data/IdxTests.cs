using System.Buffers.Binary;
using System.IO.Compression;
using ResidualLab.Data;
using static TorchSharp.torch;

namespace ResidualLab.Tests.Data;

public class IdxTests
{
    /// <summary>Writes an unsigned-byte IDX file: magic 00 00 08 rank, big-endian dimensions, values.</summary>
    internal static void Write(string path, int[] shape, byte[] values, bool gzip = false, byte type = 0x08)
    {
        using var file = File.Create(path);
        using Stream stream = gzip ? new GZipStream(file, CompressionLevel.Fastest) : file;
        stream.Write([0, 0, type, (byte)shape.Length]);
        Span<byte> dim = stackalloc byte[4];
        foreach (int d in shape)
        {
            BinaryPrimitives.WriteInt32BigEndian(dim, d);
            stream.Write(dim);
        }
        stream.Write(values);
    }

    /// <summary>Writes the four files of an MNIST-like set with n images of size x size per split.</summary>
    internal static string WriteSet(int trainCount, int testCount, int size, int seed = 1)
    {
        string dir = TestSupport.TempDir();
        var random = new Random(seed);
        foreach (var (prefix, n) in new[] { ("train", trainCount), ("t10k", testCount) })
        {
            var labels = Enumerable.Range(0, n).Select(i => (byte)(i % 10)).ToArray();
            // Each class draws a bright square at its own place, plus noise: easy to learn.
            var pixels = new byte[n * size * size];
            for (int i = 0; i < n; i++)
                for (int p = 0; p < size * size; p++)
                {
                    int y = p / size, x = p % size, c = labels[i];
                    bool inSquare = y / 3 == c % (size / 3) && x / 3 == c / (size / 3);
                    pixels[i * size * size + p] = (byte)(inSquare ? 255 : random.Next(64));
                }
            Write(Path.Combine(dir, $"{prefix}-images-idx3-ubyte"), [n, size, size], pixels, gzip: prefix == "train");
            Write(Path.Combine(dir, $"{prefix}-labels-idx1-ubyte"), [n], labels);
        }
        File.Move(Path.Combine(dir, "train-images-idx3-ubyte"), Path.Combine(dir, "train-images-idx3-ubyte.gz"));
        return dir;
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Reads_raw_and_gzipped_files(bool gzip)
    {
        string path = Path.Combine(TestSupport.TempDir(), "images");
        var values = Enumerable.Range(0, 2 * 3 * 4).Select(i => (byte)(i * 7)).ToArray();
        Write(path, [2, 3, 4], values, gzip);

        var array = Idx.Read(path, 3);

        Assert.Equal(new[] { 2, 3, 4 }, array.Shape);
        Assert.Equal(values, array.Values);
        Assert.Equal(2, array.Count);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void A_truncated_file_is_a_clear_error(bool gzip)
    {
        string path = Path.Combine(TestSupport.TempDir(), "labels");
        Write(path, [100], new byte[60], gzip); // the header promises 100 labels, 60 follow

        var ex = Assert.Throws<InvalidDataException>(() => Idx.Read(path, 1));

        Assert.Contains(path, ex.Message);
        Assert.Contains("truncated", ex.Message);
        Assert.Contains("100", ex.Message);
        Assert.Contains("60", ex.Message);
    }

    [Fact]
    public void A_file_cut_inside_its_header_is_a_clear_error()
    {
        string path = Path.Combine(TestSupport.TempDir(), "short");
        File.WriteAllBytes(path, [0, 0, 8, 3, 0, 0]);
        var ex = Assert.Throws<InvalidDataException>(() => Idx.Read(path, 3));
        Assert.Contains("truncated IDX header", ex.Message);
    }

    [Fact]
    public void A_bad_magic_is_a_clear_error()
    {
        string path = Path.Combine(TestSupport.TempDir(), "not-idx");
        File.WriteAllText(path, "<html>not found</html>");
        var ex = Assert.Throws<InvalidDataException>(() => Idx.Read(path, 3));
        Assert.Contains("not an IDX file", ex.Message);
    }

    [Fact]
    public void Wrong_rank_and_type_are_clear_errors()
    {
        string dir = TestSupport.TempDir();
        Write(Path.Combine(dir, "labels"), [4], new byte[4]);
        Write(Path.Combine(dir, "floats"), [4], new byte[16], type: 0x0D);
        Assert.Contains("1 dimensions, expected 3", Assert.Throws<InvalidDataException>(() => Idx.Read(Path.Combine(dir, "labels"), 3)).Message);
        Assert.Contains("not supported", Assert.Throws<InvalidDataException>(() => Idx.Read(Path.Combine(dir, "floats"), 1)).Message);
    }

    [Fact]
    public void A_folder_of_idx_files_is_an_image_set_with_its_published_split()
    {
        string dir = WriteSet(trainCount: 30, testCount: 20, size: 12);

        var set = ImageSets.FromFolder("toy", dir);

        Assert.Equal(new long[] { 30, 1, 12, 12 }, set.Train.Pixels.shape);
        Assert.Equal(20, set.Test.Count);
        Assert.Equal(10, set.Classes);
        using var all = set.Normalise(set.Train.Pixels);
        Assert.Equal(0.0, all.mean().item<float>(), 3);
        Assert.Equal(1.0, all.std().item<float>(), 2);
    }

    [Fact]
    public void Constant_training_images_are_a_clear_error_not_nan_pixels()
    {
        string dir = WriteSet(trainCount: 10, testCount: 10, size: 6);
        File.Delete(Path.Combine(dir, "train-images-idx3-ubyte.gz"));
        Write(Path.Combine(dir, "train-images-idx3-ubyte"), [10, 6, 6], Enumerable.Repeat((byte)7, 10 * 6 * 6).ToArray());

        var ex = Assert.Throws<InvalidDataException>(() => ImageSets.FromFolder("toy", dir));

        Assert.Equal("toy: every training pixel has the value 7 (standard deviation 0), so the images cannot be standardised; use a set whose training images vary", ex.Message);
    }

    [Fact]
    public void Mismatched_images_and_labels_are_a_clear_error()
    {
        string dir = WriteSet(trainCount: 10, testCount: 10, size: 6);
        Write(Path.Combine(dir, "t10k-labels-idx1-ubyte"), [9], new byte[9]);
        var ex = Assert.Throws<InvalidDataException>(() => ImageSets.FromFolder("toy", dir));
        Assert.Contains("10 images but 9 labels", ex.Message);
    }

    [Fact]
    public void Data_images_may_name_a_folder_and_its_faults_are_one_line_config_errors()
    {
        string dir = WriteSet(trainCount: 10, testCount: 10, size: 6);
        Assert.Null(ImageSets.Problem(dir));
        Assert.Equal(10, ImageSets.Load(dir).Test.Count);

        Write(Path.Combine(dir, "t10k-labels-idx1-ubyte"), [9], new byte[9]);
        var mismatch = Assert.Throws<ConfigException>(() => ImageSets.Load(dir));
        Assert.Contains($"image folder '{dir}'", mismatch.Message);
        Assert.Contains("10 images but 9 labels", mismatch.Message);

        File.Delete(Path.Combine(dir, "t10k-labels-idx1-ubyte"));
        Assert.Contains("has no t10k-labels-idx1-ubyte;", ImageSets.Problem(dir));
        Assert.Contains("a folder of IDX files given as a path with a '/'", ImageSets.Problem("my-set"));
        Assert.DoesNotContain("\n", ImageSets.Problem(dir));
    }

    [Fact]
    public void Batches_cover_an_epoch_and_random_crops_keep_the_size()
    {
        var set = ImageSets.FromFolder("toy", WriteSet(trainCount: 24, testCount: 8, size: 12));
        var plain = new ImageBatcher(set, set.Train, batchSize: 8, seed: 3);
        var batches = Enumerable.Range(0, 4).Select(_ => plain.NextBatch()).ToList();
        Assert.Equal(new[] { 0, 0, 0, 1 }, batches.Select(b => b.Epoch));
        Assert.Equal(set.Train.Labels.data<long>().ToArray().Order(), batches.Take(3).SelectMany(b => b.Labels).Order()); // every image once per epoch

        var cropped = new ImageBatcher(set, set.Train, batchSize: 8, seed: 3, cropPadding: 4);
        var (images, labels) = cropped.NextBatch().ToTensors(CPU);
        Assert.Equal(new long[] { 8, 1, 12, 12 }, images.shape);
        Assert.Equal(new long[] { 8 }, labels.shape);
    }

    [Fact]
    public void Batches_are_libtorchs_normalised_and_cropped_images_bit_for_bit()
    {
        // The reference: the epoch's order from randperm on a generator seeded with the batcher's seed,
        // ImageSet.Normalise, zero padding by 4 and crops at offsets drawn from System.Random(seed).
        var set = ImageSets.FromFolder("toy", WriteSet(trainCount: 24, testCount: 8, size: 12));
        const ulong seed = 5;
        using var order = randperm(24, generator: new Generator(seed));
        var crops = new Random((int)seed);
        var batcher = new ImageBatcher(set, set.Train, batchSize: 8, seed, cropPadding: 4);
        for (int b = 0; b < 3; b++)
        {
            using var scope = NewDisposeScope();
            var index = order.narrow(0, 8 * b, 8);
            var padded = nn.functional.pad(set.Normalise(set.Train.Pixels.index_select(0, index)), [4, 4, 4, 4]);
            var expected = stack(Enumerable.Range(0, 8).Select(i =>
            {
                int dy = crops.Next(9), dx = crops.Next(9);
                return padded[i].narrow(1, dy, 12).narrow(2, dx, 12);
            }).ToArray());
            var batch = batcher.NextBatch();
            Assert.Equal(Bits(expected.contiguous().data<float>().ToArray()), Bits(batch.Images));
            Assert.Equal(set.Train.Labels.index_select(0, index).data<long>().ToArray(), batch.Labels);
        }
    }

    static int[] Bits(float[] values) => values.Select(BitConverter.SingleToInt32Bits).ToArray();
}
