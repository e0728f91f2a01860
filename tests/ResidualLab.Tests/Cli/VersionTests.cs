using System.Text.RegularExpressions;

namespace ResidualLab.Tests.Cli;

public class VersionTests
{
    /// <summary>The one place the version is written.</summary>
    static string PropsVersion()
    {
        string props = File.ReadAllText(Path.Combine(TestSupport.RepoRoot(), "Directory.Build.props"));
        return Regex.Match(props, "<VersionPrefix>([^<]+)</VersionPrefix>").Groups[1].Value;
    }

    [Fact]
    public void The_library_reports_the_version_of_Directory_Build_props()
    {
        Assert.Matches(@"^\d+\.\d+\.\d+", PropsVersion());
        Assert.Equal(PropsVersion(), BuildInfo.Version);
    }

    [Fact]
    public void Reslab_version_prints_it()
    {
        var o = CliProcess.Run(["--version"]);
        Assert.Equal(0, o.ExitCode);
        Assert.StartsWith(PropsVersion(), o.StdOut.Trim());
    }
}
