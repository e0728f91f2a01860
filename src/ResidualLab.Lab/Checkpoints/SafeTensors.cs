using System.Buffers.Binary;
using System.Text.Encodings.Web;
using System.Text.Json;

namespace ResidualLab.Checkpoints;

// The safetensors format (huggingface/safetensors), byte for byte:
//   u64 little endian N | N bytes of UTF-8 JSON header, padded with spaces to a multiple of 8 | data
// header: {"__metadata__": {string: string}, name: {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}}
// Offsets are relative to the start of the data; the tensors cover it exactly, without gaps or overlap.
// Element bytes are little endian, rows in C (row-major) order.

/// <summary>Element types of the safetensors format that this reader and writer handle.</summary>
internal enum SafeDType { BOOL, U8, I8, I16, U16, F16, BF16, I32, U32, F32, I64, U64, F64 }

/// <summary>One named tensor as raw little-endian bytes.</summary>
internal sealed record SafeTensor(string Name, SafeDType DType, IReadOnlyList<long> Shape, ReadOnlyMemory<byte> Data)
{
    public long ElementCount => Shape.Aggregate(1L, (n, d) => n * d);
}

/// <summary>A whole safetensors file: string metadata and tensors.</summary>
internal sealed record SafeTensorsFile(IReadOnlyDictionary<string, string> Metadata, IReadOnlyList<SafeTensor> Tensors)
{
    public SafeTensor? Find(string name) => Tensors.FirstOrDefault(t => t.Name == name);
}

/// <summary>A file that is not valid safetensors (truncated, corrupt header, inconsistent offsets).</summary>
internal sealed class SafeTensorsException(string message) : IOException(message);

/// <summary>Reads and writes the safetensors format, validating every length and offset.</summary>
internal static class SafeTensors
{
    public const string MetadataKey = "__metadata__";

    /// <summary>Largest header accepted, as the reference implementation (100 MB).</summary>
    public const long MaxHeaderBytes = 100_000_000;

    public static int ElementSize(SafeDType dtype) => dtype switch
    {
        SafeDType.BOOL or SafeDType.U8 or SafeDType.I8 => 1,
        SafeDType.I16 or SafeDType.U16 or SafeDType.F16 or SafeDType.BF16 => 2,
        SafeDType.I32 or SafeDType.U32 or SafeDType.F32 => 4,
        _ => 8,
    };

    static readonly JsonWriterOptions HeaderJson = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <summary>Writes the file atomically: a half-written checkpoint never appears under <paramref name="path"/>.</summary>
    public static void Write(string path, SafeTensorsFile file) => AtomicFile.Write(path, stream => Write(stream, file));

    /// <summary>
    /// Writes tensors in order of element size (largest first), then name, as the reference does, so that
    /// every tensor's data is aligned to its element size.
    /// </summary>
    public static void Write(Stream stream, SafeTensorsFile file)
    {
        var ordered = file.Tensors.OrderByDescending(t => ElementSize(t.DType)).ThenBy(t => t.Name, StringComparer.Ordinal).ToList();
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var t in ordered)
        {
            if (t.Name == MetadataKey) throw new ArgumentException($"'{MetadataKey}' cannot name a tensor");
            if (!names.Add(t.Name)) throw new ArgumentException($"tensor '{t.Name}' is given twice");
            if (t.Shape.Any(d => d < 0)) throw new ArgumentException($"tensor '{t.Name}' has a negative dimension");
            if (t.ElementCount * ElementSize(t.DType) != t.Data.Length)
                throw new ArgumentException($"tensor '{t.Name}': {t.Data.Length} bytes do not match {t.DType} [{string.Join(", ", t.Shape)}]");
        }

        var header = new MemoryStream();
        using (var json = new Utf8JsonWriter(header, HeaderJson))
        {
            json.WriteStartObject();
            if (file.Metadata.Count > 0)
            {
                json.WriteStartObject(MetadataKey);
                foreach (var (key, value) in file.Metadata) json.WriteString(key, value);
                json.WriteEndObject();
            }
            long offset = 0;
            foreach (var t in ordered)
            {
                json.WriteStartObject(t.Name);
                json.WriteString("dtype", t.DType.ToString());
                json.WriteStartArray("shape");
                foreach (var d in t.Shape) json.WriteNumberValue(d);
                json.WriteEndArray();
                json.WriteStartArray("data_offsets");
                json.WriteNumberValue(offset);
                json.WriteNumberValue(offset += t.Data.Length);
                json.WriteEndArray();
                json.WriteEndObject();
            }
            json.WriteEndObject();
        }
        while (header.Length % 8 != 0) header.WriteByte((byte)' ');

        Span<byte> length = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(length, (ulong)header.Length);
        stream.Write(length);
        header.Position = 0;
        header.CopyTo(stream);
        foreach (var t in ordered) stream.Write(t.Data.Span);
    }

    public static SafeTensorsFile Read(string path)
    {
        using var stream = File.OpenRead(path);
        return Read(stream, path);
    }

    /// <param name="source">Names the file in error messages.</param>
    public static SafeTensorsFile Read(Stream stream, string source)
    {
        SafeTensorsException Bad(string what) => new($"'{source}' is not a valid safetensors file: {what}");

        long size = stream.Length;
        if (size < 8) throw Bad($"it has {size} bytes, fewer than the 8 of the header length (truncated?)");
        Span<byte> lengthBytes = stackalloc byte[8];
        stream.ReadExactly(lengthBytes);
        ulong headerLength = BinaryPrimitives.ReadUInt64LittleEndian(lengthBytes);
        if (headerLength > (ulong)(size - 8))
            throw Bad($"the header claims {headerLength} bytes but only {size - 8} follow (truncated?)");
        if (headerLength > MaxHeaderBytes) throw Bad($"the header claims {headerLength} bytes, more than the limit of {MaxHeaderBytes}");
        var headerBytes = new byte[headerLength];
        stream.ReadExactly(headerBytes);
        long dataLength = size - 8 - (long)headerLength;

        JsonDocument doc;
        try { doc = JsonDocument.Parse(headerBytes); }
        catch (JsonException ex) { throw Bad($"its header is not valid JSON ({ex.Message})"); }
        using var _ = doc;
        if (doc.RootElement.ValueKind != JsonValueKind.Object) throw Bad("its header is not a JSON object");

        var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
        var entries = new List<(string Name, SafeDType DType, long[] Shape, long Begin, long End)>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var property in doc.RootElement.EnumerateObject())
        {
            if (!seen.Add(property.Name)) throw Bad($"the header names '{property.Name}' twice");
            if (property.Name == MetadataKey)
            {
                if (property.Value.ValueKind != JsonValueKind.Object) throw Bad($"'{MetadataKey}' is not an object");
                foreach (var m in property.Value.EnumerateObject())
                    metadata[m.Name] = m.Value.ValueKind == JsonValueKind.String ? m.Value.GetString()!
                        : throw Bad($"metadata '{m.Name}' is not a string");
                continue;
            }
            entries.Add(ReadEntry(property, Bad));
        }

        // The tensors must tile the data exactly: sorted by offset, each starts where the previous ended.
        long expected = 0;
        foreach (var e in entries.OrderBy(e => e.Begin).ThenBy(e => e.End))
        {
            if (e.Begin != expected)
                throw Bad(e.Begin < expected
                    ? $"tensor '{e.Name}' overlaps the previous tensor (it starts at {e.Begin}, before {expected})"
                    : $"there is a gap before tensor '{e.Name}' (it starts at {e.Begin}, expected {expected})");
            expected = e.End;
        }
        if (expected != dataLength)
            throw Bad(expected > dataLength
                ? $"the tensors need {expected} bytes of data but the file holds {dataLength} (truncated?)"
                : $"the file holds {dataLength} bytes of data but the tensors cover only {expected}");

        long dataStart = 8 + (long)headerLength;
        var tensors = new List<SafeTensor>(entries.Count);
        foreach (var e in entries)
        {
            var data = new byte[e.End - e.Begin];
            stream.Position = dataStart + e.Begin;
            stream.ReadExactly(data);
            tensors.Add(new SafeTensor(e.Name, e.DType, e.Shape, data));
        }
        return new SafeTensorsFile(metadata, tensors);
    }

    static (string, SafeDType, long[], long, long) ReadEntry(JsonProperty property, Func<string, SafeTensorsException> bad)
    {
        string name = property.Name;
        var info = property.Value;
        if (info.ValueKind != JsonValueKind.Object) throw bad($"the entry of tensor '{name}' is not an object");

        string dtypeText = info.TryGetProperty("dtype", out var d) && d.ValueKind == JsonValueKind.String ? d.GetString()!
            : throw bad($"tensor '{name}' has no \"dtype\" string");
        if (!Enum.TryParse<SafeDType>(dtypeText, ignoreCase: false, out var dtype) || !Enum.IsDefined(dtype) || dtypeText != dtype.ToString())
            throw bad($"tensor '{name}' has dtype '{dtypeText}', which is not supported (supported: {string.Join(", ", Enum.GetNames<SafeDType>())})");

        long[] Longs(string key, int? count)
        {
            if (!info.TryGetProperty(key, out var array) || array.ValueKind != JsonValueKind.Array)
                throw bad($"tensor '{name}' has no \"{key}\" array");
            var values = array.EnumerateArray().Select(v =>
                v.ValueKind == JsonValueKind.Number && v.TryGetInt64(out long x) && x >= 0 ? x
                    : throw bad($"tensor '{name}': \"{key}\" holds {v.GetRawText()}, not a non-negative integer")).ToArray();
            if (count is { } n && values.Length != n) throw bad($"tensor '{name}': \"{key}\" has {values.Length} entries, not {n}");
            return values;
        }

        var shape = Longs("shape", null);
        var offsets = Longs("data_offsets", 2);
        if (offsets[1] < offsets[0]) throw bad($"tensor '{name}' ends (at {offsets[1]}) before it begins (at {offsets[0]})");
        long bytes;
        try { bytes = checked(shape.Aggregate(1L, (n, x) => n * x) * ElementSize(dtype)); }
        catch (OverflowException) { throw bad($"tensor '{name}' has a shape too large to address: [{string.Join(", ", shape)}]"); }
        if (bytes != offsets[1] - offsets[0])
            throw bad($"tensor '{name}' is {dtype} [{string.Join(", ", shape)}], which needs {bytes} bytes, but its offsets span {offsets[1] - offsets[0]}");
        if (bytes > Array.MaxLength) throw bad($"tensor '{name}' has {bytes} bytes, more than this reader holds in memory");
        return (name, dtype, shape, offsets[0], offsets[1]);
    }
}
