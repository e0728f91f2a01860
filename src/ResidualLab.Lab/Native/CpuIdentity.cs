namespace ResidualLab.Native;

/// <summary>
/// The host CPU as /proc/cpuinfo names it: vendor, family and whether it has AVX-512 and AVX2. Every
/// speed figure and the PyTorch peer's OpenBLAS kernels (<see cref="Bench.PeerLayout"/>) depend on it.
/// </summary>
public sealed record CpuIdentity(string Vendor, int Family, string ModelName, bool Avx512, bool Avx2)
{
    /// <summary>The first processor's entry of /proc/cpuinfo; an unknown CPU where the file is absent.</summary>
    public static CpuIdentity Host { get; } = Read("/proc/cpuinfo");

    /// <summary>"AMD EPYC, family 25, AVX2": the short form figures are labelled with.</summary>
    public string Describe() => $"{ModelName}, family {Family}, {(Avx512 ? "AVX-512" : Avx2 ? "AVX2" : "no AVX2")}";

    /// <summary>Reads a cpuinfo file; an unknown CPU where it is absent.</summary>
    public static CpuIdentity Read(string path)
    {
        if (!File.Exists(path)) return new CpuIdentity("unknown", 0, "unknown CPU", false, false);
        return Parse(File.ReadLines(path));
    }

    /// <summary>Reads the fields of the first processor (up to the first blank line).</summary>
    public static CpuIdentity Parse(IEnumerable<string> lines)
    {
        string vendor = "unknown", model = "unknown CPU";
        int family = 0;
        bool avx512 = false, avx2 = false;
        foreach (var line in lines)
        {
            if (line.Length == 0) break;
            int colon = line.IndexOf(':');
            if (colon < 0) continue;
            string key = line[..colon].Trim(), value = line[(colon + 1)..].Trim();
            switch (key)
            {
                case "vendor_id": vendor = value; break;
                case "cpu family": int.TryParse(value, out family); break;
                case "model name": model = value; break;
                case "flags":
                    var flags = value.Split(' ');
                    (avx512, avx2) = (flags.Contains("avx512f"), flags.Contains("avx2"));
                    break;
            }
        }
        return new CpuIdentity(vendor, family, model, avx512, avx2);
    }
}
