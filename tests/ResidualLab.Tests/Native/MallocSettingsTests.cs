using ResidualLab.Native;
using Xunit;

namespace ResidualLab.Tests.Native;

public class MallocSettingsTests
{
    [Fact]
    public void GlibcTakesTheTrainingSettings()
    {
        // The build targets linux-x64 with glibc (Debian): mallopt must accept both thresholds there.
        Assert.True(MallocSettings.Apply(), "mallopt refused the mmap or trim threshold");
    }
}
