using ResidualLab.Bench;

namespace ResidualLab.Tests.Native;

/// <summary>The library only checks for system packages; a missing one is one line with the command that installs it.</summary>
public class DebianPackagesTests
{
    [Fact]
    public void Bench_against_pytorch_without_its_packages_names_the_one_command_that_installs_them()
    {
        var ex = Assert.Throws<ConfigException>(() => PyTorchPeer.RequireInstalled(_ => false));
        Assert.Equal("bench --compare-pytorch needs the Debian packages python3-torch, libopenblas0; install them (as root) with: apt-get install -y python3-torch libopenblas0", ex.Message);
    }

    [Fact]
    public void Only_the_missing_package_is_named()
    {
        var ex = Assert.Throws<ConfigException>(() => PyTorchPeer.RequireInstalled(p => p != "libopenblas0"));
        Assert.Equal("bench --compare-pytorch needs the Debian package libopenblas0; install it (as root) with: apt-get install -y libopenblas0", ex.Message);
        PyTorchPeer.RequireInstalled(_ => true); // all present: nothing to say
    }

    [Fact]
    public void Dpkg_knows_an_essential_package_and_not_an_invented_one()
    {
        Assert.True(DebianPackages.Installed("dpkg"));
        Assert.False(DebianPackages.Installed("reslab-no-such-package"));
    }
}
