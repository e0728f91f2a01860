using System.Buffers.Binary;
using System.Text;

namespace ResidualLab.Native;

/// <summary>
/// Marks one version requirement of an ELF64 shared library weak, in place.
///
/// TorchSharp's libLibTorchSharp.so (0.107) is built with GCC 13 and requires the symbol version
/// GLIBCXX_3.4.32 for exactly one symbol (std::ios_base_library_init, never called). Debian 12's
/// libstdc++ stops at GLIBCXX_3.4.30, so the loader refuses the library. Setting VER_FLG_WEAK on the
/// Elf64_Vernaux entry of that version makes a missing version a non-error; nothing else changes.
/// </summary>
internal static class ElfWeakVersionPatch
{
    const uint SectionTypeVerneed = 0x6ffffffe; // SHT_GNU_verneed
    const ushort VerFlagWeak = 0x2;             // VER_FLG_WEAK

    public enum Outcome { Patched, AlreadyWeak }

    /// <summary>Sets VER_FLG_WEAK on the Vernaux entry named <paramref name="version"/>.</summary>
    /// <exception cref="InvalidDataException">Not an ELF64 little-endian file, or no such entry.</exception>
    public static Outcome MarkWeak(string path, string version)
    {
        byte[] elf = File.ReadAllBytes(path);
        long flagOffset = FindVernauxFlags(elf, version, path);
        ushort flags = BinaryPrimitives.ReadUInt16LittleEndian(elf.AsSpan((int)flagOffset));
        if ((flags & VerFlagWeak) != 0) return Outcome.AlreadyWeak;

        // Write to a temporary copy and rename, so an interrupted patch never leaves half a library; the
        // copy's name is this patcher's own, so processes started together (a sweep's runs) may all patch.
        BinaryPrimitives.WriteUInt16LittleEndian(elf.AsSpan((int)flagOffset), (ushort)(flags | VerFlagWeak));
        string tmp = $"{path}.patching.{Environment.ProcessId}.{Environment.CurrentManagedThreadId}";
        File.WriteAllBytes(tmp, elf);
        File.Move(tmp, path, overwrite: true);
        return Outcome.Patched;
    }

    /// <summary>True when the Vernaux entry named <paramref name="version"/> carries VER_FLG_WEAK.</summary>
    public static bool IsWeak(string path, string version)
    {
        byte[] elf = File.ReadAllBytes(path);
        long offset = FindVernauxFlags(elf, version, path);
        return (BinaryPrimitives.ReadUInt16LittleEndian(elf.AsSpan((int)offset)) & VerFlagWeak) != 0;
    }

    /// <summary>File offset of vna_flags of the Vernaux entry whose name is <paramref name="version"/>.</summary>
    internal static long FindVernauxFlags(byte[] elf, string version, string pathForErrors)
    {
        var e = elf.AsSpan();
        if (e.Length < 64 || e[0] != 0x7f || e[1] != (byte)'E' || e[2] != (byte)'L' || e[3] != (byte)'F')
            throw new InvalidDataException($"{pathForErrors}: not an ELF file");
        if (e[4] != 2 || e[5] != 1)
            throw new InvalidDataException($"{pathForErrors}: not a 64-bit little-endian ELF file");

        ulong shoff = BinaryPrimitives.ReadUInt64LittleEndian(e[0x28..]);
        ushort shentsize = BinaryPrimitives.ReadUInt16LittleEndian(e[0x3A..]);
        ushort shnum = BinaryPrimitives.ReadUInt16LittleEndian(e[0x3C..]);

        for (int i = 0; i < shnum; i++)
        {
            var sh = e.Slice(checked((int)shoff + i * shentsize), shentsize);
            uint type = BinaryPrimitives.ReadUInt32LittleEndian(sh[4..]);
            if (type != SectionTypeVerneed) continue;

            ulong secOffset = BinaryPrimitives.ReadUInt64LittleEndian(sh[0x18..]);
            uint link = BinaryPrimitives.ReadUInt32LittleEndian(sh[0x28..]);
            uint entries = BinaryPrimitives.ReadUInt32LittleEndian(sh[0x2C..]); // sh_info: number of Verneed
            var strtab = e.Slice(checked((int)shoff + (int)link * shentsize), shentsize);
            ulong strOffset = BinaryPrimitives.ReadUInt64LittleEndian(strtab[0x18..]);

            long vn = (long)secOffset;
            for (uint n = 0; n < entries; n++)
            {
                ushort cnt = BinaryPrimitives.ReadUInt16LittleEndian(e[(int)(vn + 2)..]);
                uint aux = BinaryPrimitives.ReadUInt32LittleEndian(e[(int)(vn + 8)..]);
                uint next = BinaryPrimitives.ReadUInt32LittleEndian(e[(int)(vn + 12)..]);
                long va = vn + aux;
                for (int k = 0; k < cnt; k++)
                {
                    uint name = BinaryPrimitives.ReadUInt32LittleEndian(e[(int)(va + 8)..]);
                    if (ReadCString(e, (long)strOffset + name) == version) return va + 4;
                    uint vnaNext = BinaryPrimitives.ReadUInt32LittleEndian(e[(int)(va + 12)..]);
                    if (vnaNext == 0) break;
                    va += vnaNext;
                }
                if (next == 0) break;
                vn += next;
            }
        }
        throw new InvalidDataException(
            $"{pathForErrors}: no version requirement '{version}' found; the TorchSharp package may have changed: re-check the Debian 12 load fix");
    }

    static string ReadCString(ReadOnlySpan<byte> e, long offset)
    {
        int start = checked((int)offset);
        int end = e[start..].IndexOf((byte)0);
        return Encoding.ASCII.GetString(e.Slice(start, end));
    }
}
