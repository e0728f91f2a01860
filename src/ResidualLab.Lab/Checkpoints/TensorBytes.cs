using static TorchSharp.torch;

namespace ResidualLab.Checkpoints;

/// <summary>Converts between TorchSharp tensors and safetensors entries, bit for bit.</summary>
internal static class TensorBytes
{
    static readonly (ScalarType Torch, SafeDType Safe)[] Types =
    [
        (ScalarType.Bool, SafeDType.BOOL), (ScalarType.Byte, SafeDType.U8), (ScalarType.Int8, SafeDType.I8),
        (ScalarType.Int16, SafeDType.I16), (ScalarType.Int32, SafeDType.I32), (ScalarType.Int64, SafeDType.I64),
        (ScalarType.Float16, SafeDType.F16), (ScalarType.BFloat16, SafeDType.BF16),
        (ScalarType.Float32, SafeDType.F32), (ScalarType.Float64, SafeDType.F64),
    ];

    public static SafeDType ToSafe(ScalarType type) =>
        Types.Where(t => t.Torch == type).Select(t => (SafeDType?)t.Safe).FirstOrDefault()
        ?? throw new ArgumentException($"tensors of type {type} cannot be stored in safetensors here");

    public static ScalarType ToTorch(SafeDType type) =>
        Types.Where(t => t.Safe == type).Select(t => (ScalarType?)t.Torch).FirstOrDefault()
        ?? throw new ArgumentException($"safetensors dtype {type} has no TorchSharp tensor type");

    /// <summary>The tensor's elements as a safetensors entry (copied to CPU, contiguous, little endian).</summary>
    public static SafeTensor FromTensor(string name, Tensor tensor)
    {
        if (!BitConverter.IsLittleEndian) throw new PlatformNotSupportedException("safetensors needs a little-endian machine");
        using var scope = NewDisposeScope();
        var cpu = tensor.detach().cpu().contiguous();
        var dtype = ToSafe(cpu.dtype);
        byte[] data = cpu.numel() == 0 ? [] : cpu.bytes.ToArray();
        return new SafeTensor(name, dtype, cpu.shape, data);
    }

    /// <summary>A new CPU tensor holding exactly the entry's bytes.</summary>
    public static Tensor ToTensor(SafeTensor entry)
    {
        if (!BitConverter.IsLittleEndian) throw new PlatformNotSupportedException("safetensors needs a little-endian machine");
        var tensor = empty(entry.Shape.ToArray(), ToTorch(entry.DType));
        if (entry.Data.Length > 0) tensor.bytes = entry.Data.ToArray();
        return tensor;
    }
}
