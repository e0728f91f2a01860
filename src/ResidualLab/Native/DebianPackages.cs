using System.Diagnostics;

namespace ResidualLab.Native;

/// <summary>
/// Installs missing Debian packages (chromium, python3-torch, fonts) with apt-get, once per process,
/// for the benchmarks' PyTorch peer and the tests' set-up, so a fresh machine needs no manual step.
/// </summary>
internal static class DebianPackages
{
    static readonly object Gate = new();
    static bool _updated;

    public static void Ensure(params string[] packages)
    {
        lock (Gate)
        {
            var missing = packages.Where(p => !Installed(p)).ToArray();
            if (missing.Length == 0) return;
            if (!_updated)
            {
                Run("apt-get", ["-o", "DPkg::Lock::Timeout=300", "update"]);
                _updated = true;
            }
            Run("apt-get", ["-o", "DPkg::Lock::Timeout=300", "install", "-y", "--no-install-recommends", .. missing]);
            var still = missing.Where(p => !Installed(p)).ToArray();
            if (still.Length > 0)
                throw new InvalidOperationException($"could not install Debian packages {string.Join(", ", still)}; install them with apt-get (as root)");
        }
    }

    public static bool Installed(string package)
    {
        var (code, output) = Run("dpkg-query", ["-W", "-f=${Status}", package], check: false);
        return code == 0 && output.Contains("install ok installed");
    }

    static (int Code, string Output) Run(string file, string[] args, bool check = true)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args) psi.ArgumentList.Add(a);
        psi.Environment["DEBIAN_FRONTEND"] = "noninteractive";
        using var p = Process.Start(psi)!;
        var stderr = p.StandardError.ReadToEndAsync();
        string stdout = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        if (check && p.ExitCode != 0)
            throw new InvalidOperationException($"{file} {string.Join(' ', args)} failed ({p.ExitCode}): {stderr.Result}");
        return (p.ExitCode, stdout);
    }
}
