using System.ComponentModel;
using ResidualLab.Processes;

namespace ResidualLab.Native;

/// <summary>
/// Checks that the Debian packages a feature needs are installed (dpkg-query). The library never
/// installs system packages: a missing one is a one-line error with the command that installs it.
/// </summary>
internal static class DebianPackages
{
    /// <summary>Throws a one-line <see cref="ConfigException"/> naming the apt-get command when any of <paramref name="packages"/> is missing.</summary>
    /// <param name="purpose">What needs them, as the error's subject ("bench --compare-pytorch").</param>
    /// <param name="installed">Whether a package is installed: <see cref="Installed"/> unless a test injects another check.</param>
    public static void Require(string purpose, IReadOnlyList<string> packages, Func<string, bool>? installed = null)
    {
        installed ??= Installed;
        var missing = packages.Where(p => !installed(p)).ToList();
        if (missing.Count == 0) return;
        string list = string.Join(' ', missing);
        throw new ConfigException(missing.Count == 1
            ? $"{purpose} needs the Debian package {list}; install it (as root) with: apt-get install -y {list}"
            : $"{purpose} needs the Debian packages {string.Join(", ", missing)}; install them (as root) with: apt-get install -y {list}");
    }

    /// <summary>Whether dpkg knows <paramref name="package"/> as installed (false where there is no dpkg).</summary>
    public static bool Installed(string package)
    {
        try
        {
            var query = ChildProcess.Run("dpkg-query", ["-W", "-f=${Status}", package]);
            return query.ExitCode == 0 && query.StdOut.Contains("install ok installed", StringComparison.Ordinal);
        }
        catch (Win32Exception) { return false; } // no dpkg-query: not a Debian system
    }
}
