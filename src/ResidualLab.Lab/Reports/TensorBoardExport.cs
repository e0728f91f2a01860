using System.Buffers.Binary;
using System.Numerics;
using System.Text;

namespace ResidualLab.Reports;

/// <summary>
/// TensorBoard event files, one folder per run (tensorboard/&lt;scheme&gt;/L&lt;depth&gt;_s&lt;seed&gt;_&lt;run id&gt;/):
/// train/loss, train/grad_norm and train/lr per step, eval/train_loss, eval/val_loss and eval/test_loss per evaluation,
/// grad_norm/block_&lt;i&gt; per probe. Written directly in the TFRecord format (length, masked CRC-32C,
/// protobuf Event) with Unix-second wall times: step k's wall time is the run's start plus the
/// recorded step times before it.
/// </summary>
internal static class TensorBoardExport
{
    public static IReadOnlyList<string> Write(StudyData data, string resultsDir)
    {
        var files = new List<string>();
        foreach (var run in data.Runs)
        {
            string dir = Path.Combine(resultsDir, "tensorboard", Safe(run.Group), $"L{run.Depth}_s{run.Run.Seed}_{run.Run.RunId}");
            StorageException.CreateFolder(dir);
            foreach (var old in Directory.GetFiles(dir, "events.out.tfevents.*")) StorageException.Guard("deleting", old, () => File.Delete(old));
            double start = run.Run.StartedAt.ToUnixTimeMilliseconds() / 1000.0;
            var wall = new SortedDictionary<int, double>();
            double elapsed = 0;
            foreach (var s in run.Steps) { wall[s.Step] = start + elapsed / 1000; elapsed += s.StepMs; }
            double WallAt(int step) => wall.TryGetValue(step, out double w) ? w : start + elapsed / 1000;

            string path = Path.Combine(dir, $"events.out.tfevents.{(long)start}.{Safe(Environment.MachineName)}");
            AtomicFile.Write(path, stream =>
            {
                WriteRecord(stream, Event(start, 0, fileVersion: "brain.Event:2"));
                foreach (var s in run.Steps)
                    WriteRecord(stream, Event(wall[s.Step], s.Step, scalars: [("train/loss", s.Loss), ("train/grad_norm", s.GradNorm), ("train/lr", s.Lr)]));
                foreach (var e in run.Evals)
                    WriteRecord(stream, Event(WallAt(e.Step), e.Step, scalars: [("eval/train_loss", e.TrainLoss), ("eval/val_loss", e.ValLoss), ("eval/test_loss", e.TestLoss)]));
                foreach (var g in run.Diagnostics.GroupBy(d => d.Step))
                    WriteRecord(stream, Event(WallAt(g.Key), g.Key, scalars: g.Select(d => ($"{d.Name}/block_{d.Index}", d.Value)).ToArray()));
            });
            files.Add(path);
        }
        return files;
    }

    static string Safe(string name) => string.Concat(name.Select(c => char.IsLetterOrDigit(c) || c is '-' or '_' or '.' or '=' ? c : '_'));

    /// <summary>A serialised tensorflow.Event: wall_time (1), step (2), file_version (3) or summary (5).</summary>
    internal static byte[] Event(double wallTime, long step, string? fileVersion = null, (string Tag, double Value)[]? scalars = null)
    {
        var e = new MemoryStream();
        Span<byte> buffer = stackalloc byte[8];
        Tag(e, 1, 1); BinaryPrimitives.WriteDoubleLittleEndian(buffer, wallTime); e.Write(buffer);
        Tag(e, 2, 0); Varint(e, (ulong)step);
        if (fileVersion is not null) Bytes(e, 3, Encoding.UTF8.GetBytes(fileVersion));
        if (scalars is not null)
        {
            var summary = new MemoryStream();
            foreach (var (tag, value) in scalars)
            {
                var v = new MemoryStream();
                Bytes(v, 1, Encoding.UTF8.GetBytes(tag));
                Tag(v, 2, 5); BinaryPrimitives.WriteSingleLittleEndian(buffer, (float)value); v.Write(buffer[..4]);
                Bytes(summary, 1, v.ToArray());
            }
            Bytes(e, 5, summary.ToArray());
        }
        return e.ToArray();
    }

    /// <summary>TFRecord framing: u64 length, masked CRC-32C of the length, data, masked CRC-32C of the data.</summary>
    internal static void WriteRecord(Stream stream, byte[] data)
    {
        Span<byte> header = stackalloc byte[12];
        BinaryPrimitives.WriteUInt64LittleEndian(header, (ulong)data.Length);
        BinaryPrimitives.WriteUInt32LittleEndian(header[8..], MaskedCrc32C(header[..8]));
        stream.Write(header);
        stream.Write(data);
        Span<byte> footer = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(footer, MaskedCrc32C(data));
        stream.Write(footer);
    }

    internal static uint Crc32C(ReadOnlySpan<byte> data)
    {
        uint crc = ~0u;
        foreach (byte b in data) crc = BitOperations.Crc32C(crc, b);
        return ~crc;
    }

    internal static uint MaskedCrc32C(ReadOnlySpan<byte> data)
    {
        uint crc = Crc32C(data);
        return ((crc >> 15) | (crc << 17)) + 0xa282ead8;
    }

    static void Tag(Stream s, int field, int wireType) => Varint(s, (ulong)((field << 3) | wireType));

    static void Bytes(Stream s, int field, byte[] bytes)
    {
        Tag(s, field, 2);
        Varint(s, (ulong)bytes.Length);
        s.Write(bytes);
    }

    static void Varint(Stream s, ulong value)
    {
        while (value >= 0x80) { s.WriteByte((byte)(value | 0x80)); value >>= 7; }
        s.WriteByte((byte)value);
    }
}
