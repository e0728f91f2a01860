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
}
