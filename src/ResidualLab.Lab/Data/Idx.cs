using System.Buffers.Binary;
using System.IO.Compression;

namespace ResidualLab.Data;

/// <summary>An unsigned-byte IDX array: its dimensions and its values in row-major order.</summary>
internal sealed record IdxArray(int[] Shape, byte[] Values)
{
    public int Count => Shape[0];
}

/// <summary>
/// Reads the IDX format of the MNIST files (LeCun et al., yann.lecun.com/exdb/mnist): a 4-byte magic
/// (0, 0, type code, number of dimensions), one big-endian int32 per dimension, then the values.
/// Only unsigned bytes (type 0x08) occur in MNIST and Fashion-MNIST. Gzipped files (magic 1f 8b) are
/// decompressed on the fly. A wrong magic, a wrong rank or a file shorter than its header says is a
/// clear <see cref="InvalidDataException"/> naming the file.
/// </summary>
internal static class Idx
{
    const byte UnsignedByte = 0x08;

    /// <summary>Reads <paramref name="path"/> and checks that it has <paramref name="rank"/> dimensions.</summary>
    public static IdxArray Read(string path, int rank)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"IDX file '{path}' does not exist", path);
        using var file = File.OpenRead(path);
        Stream stream = file;
        if (IsGzip(file)) stream = new GZipStream(file, CompressionMode.Decompress);
        using (stream)
        {
            try { return Read(stream, rank, path); }
            catch (InvalidDataException ex) when (stream is GZipStream && !ex.Message.StartsWith(path, StringComparison.Ordinal))
            {
                throw new InvalidDataException($"{path}: corrupt gzip data ({ex.Message}); delete the file and fetch it again");
            }
        }
    }

    static bool IsGzip(FileStream file)
    {
        Span<byte> head = stackalloc byte[2];
        int n = file.Read(head);
        file.Position = 0;
        return n == 2 && head[0] == 0x1f && head[1] == 0x8b;
    }

    /// <summary>Reads an IDX array from a stream; <paramref name="name"/> names it in errors.</summary>
    public static IdxArray Read(Stream stream, int rank, string name)
    {
        Span<byte> magic = stackalloc byte[4];
        if (ReadFully(stream, magic) < 4)
            throw new InvalidDataException($"{name}: truncated IDX file (no 4-byte header); fetch it again");
        if (magic[0] != 0 || magic[1] != 0)
            throw new InvalidDataException($"{name}: not an IDX file (magic {Convert.ToHexString(magic)}, expected 0000{UnsignedByte:X2}{rank:X2})");
        if (magic[2] != UnsignedByte)
            throw new InvalidDataException($"{name}: IDX type 0x{magic[2]:X2} is not supported (only unsigned bytes, 0x08)");
        if (magic[3] != rank)
            throw new InvalidDataException($"{name}: IDX file has {magic[3]} dimensions, expected {rank} ({(rank == 1 ? "labels" : "images")})");

        var shape = new int[rank];
        Span<byte> dim = stackalloc byte[4];
        long count = 1;
        for (int i = 0; i < rank; i++)
        {
            if (ReadFully(stream, dim) < 4)
                throw new InvalidDataException($"{name}: truncated IDX header (dimension {i} missing); fetch it again");
            shape[i] = BinaryPrimitives.ReadInt32BigEndian(dim);
            if (shape[i] < 0) throw new InvalidDataException($"{name}: negative IDX dimension {shape[i]}");
            count *= shape[i];
        }
        if (count > Array.MaxLength)
            throw new InvalidDataException($"{name}: IDX array of {count} values is too large");

        var values = new byte[count];
        int read = ReadFully(stream, values);
        if (read < count)
            throw new InvalidDataException($"{name}: truncated IDX file: header promises {count:N0} values ({string.Join(" x ", shape)}), found {read:N0}; fetch it again");
        return new IdxArray(shape, values);
    }

    static int ReadFully(Stream stream, Span<byte> buffer)
    {
        int total = 0;
        while (total < buffer.Length)
        {
            int n = stream.Read(buffer[total..]);
            if (n == 0) break;
            total += n;
        }
        return total;
    }
}
