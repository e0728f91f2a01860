using System.Collections;
using System.IO.MemoryMappedFiles;

namespace ResidualLab.Data;

/// <summary>A read-only run of token ids: an array in memory, or a slice of a memory-mapped token cache.</summary>
internal abstract class TokenSequence : IEnumerable<int>
{
    public abstract int Length { get; }
    public abstract int this[int index] { get; }

    public static implicit operator TokenSequence(int[] tokens) => new ArrayTokens(tokens);

    public int[] ToArray()
    {
        var a = new int[Length];
        for (int i = 0; i < a.Length; i++) a[i] = this[i];
        return a;
    }

    public IEnumerator<int> GetEnumerator()
    {
        for (int i = 0; i < Length; i++) yield return this[i];
    }

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();
}

internal sealed class ArrayTokens(int[] tokens) : TokenSequence
{
    public override int Length => tokens.Length;
    public override int this[int index] => tokens[index];
}

/// <summary>
/// Tokens stored as little-endian uint16 or uint32 in a memory-mapped file (nanoGPT's train.bin): pages
/// are read on demand, so a large corpus costs no managed memory.
/// </summary>
internal sealed unsafe class MappedTokens : TokenSequence
{
    readonly MemoryMappedViewAccessor _view; // keeps the mapping alive as long as the sequence
    readonly byte* _start;
    readonly int _width;

    internal MappedTokens(MemoryMappedViewAccessor view, byte* start, int width, int length)
    {
        _view = view;
        _start = start;
        _width = width;
        Length = length;
    }

    public override int Length { get; }

    public override int this[int index]
    {
        get
        {
            if ((uint)index >= (uint)Length) throw new IndexOutOfRangeException();
            return _width == 2 ? ((ushort*)_start)[index] : (int)((uint*)_start)[index];
        }
    }
}
