using System.Buffers.Binary;
using System.Text;
using ResidualLab.Reports;
using ResidualLab.Tests.Experiments;

namespace ResidualLab.Tests.Reports;

public class TensorBoardExportTests
{
    [Fact]
    public void Crc32c_matches_the_standard_check_value() =>
        Assert.Equal(0xE3069283u, TensorBoardExport.Crc32C("123456789"u8));

    [Fact]
    public void Event_files_are_valid_records_with_every_scalar()
    {
        StudyData data;
        using (var store = ResidualLab.Results.Store.ResultsStore.Open(TinySweep.SharedStudy)) data = StudyData.Load(store);
        string dir = TestSupport.TempDir();
        var files = TensorBoardExport.Write(data, dir);
        Assert.Equal(data.Runs.Count, files.Count);
        var run = data.Runs.First(r => r.Depth == 2);
        string file = files.Single(f => f.Contains(run.Run.RunId));
        Assert.Matches(@"events\.out\.tfevents\.1[0-9]{9}\.", Path.GetFileName(file)); // Unix seconds, not .NET ticks

        var records = ReadRecords(File.ReadAllBytes(file));
        Assert.Contains("brain.Event:2", Encoding.UTF8.GetString(records[0]));
        Assert.Equal(1 + run.Steps.Count + run.Evals.Count + run.Diagnostics.Select(d => d.Step).Distinct().Count(), records.Count);
        double wallTime = BinaryPrimitives.ReadDoubleLittleEndian(records[1].AsSpan(1));
        Assert.Equal(run.Run.StartedAt.ToUnixTimeMilliseconds() / 1000.0, wallTime, 1e-3);
        string all = string.Concat(records.Select(Encoding.UTF8.GetString));
        foreach (var tag in new[] { "train/loss", "train/grad_norm", "train/lr", "eval/val_loss", "eval/train_loss", "grad_norm/block_1" })
            Assert.Contains(tag, all);
    }

    /// <summary>Reads TFRecord framing back, checking both masked CRCs of every record.</summary>
    static List<byte[]> ReadRecords(byte[] bytes)
    {
        var records = new List<byte[]>();
        for (int i = 0; i < bytes.Length;)
        {
            var length = bytes.AsSpan(i, 8);
            Assert.Equal(TensorBoardExport.MaskedCrc32C(length), BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(i + 8)));
            int n = (int)BinaryPrimitives.ReadUInt64LittleEndian(length);
            var data = bytes.AsSpan(i + 12, n).ToArray();
            Assert.Equal(TensorBoardExport.MaskedCrc32C(data), BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(i + 12 + n)));
            records.Add(data);
            i += 16 + n;
        }
        return records;
    }
}
