using System.Reflection;

namespace ResidualLab;

/// <summary>The version and source commit this library was built from.</summary>
public static class BuildInfo
{
    // The SDK writes "<Version>+<commit>" into the informational version (Directory.Build.props holds the version).
    static readonly string Informational =
        typeof(BuildInfo).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? "unknown";

    /// <summary>The package version, e.g. "0.1.0".</summary>
    public static string Version { get; } = Informational.Split('+')[0];

    /// <summary>The git commit of the build, or "unknown" when it was built outside a repository.</summary>
    public static string Commit { get; } = Informational.Contains('+') ? Informational[(Informational.IndexOf('+') + 1)..] : "unknown";

    /// <summary>
    /// Whether the source tree had changes not in <see cref="Commit"/> when this library was built (tracked
    /// files edited, or files git does not ignore added); null when the build could not ask git.
    /// </summary>
    public static bool? Dirty { get; } =
        typeof(BuildInfo).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().FirstOrDefault(a => a.Key == "GitDirty")?.Value switch
        {
            "true" => true,
            "false" => false,
            _ => null,
        };
}
