using ResidualLab.Connections;

namespace ResidualLab.Tests.Cli;

public class ListTests
{
    [Fact]
    public void List_connections_shows_every_scheme_with_its_resnet_note()
    {
        var o = CliProcess.Run(["list", "connections"]);

        Assert.Equal(0, o.ExitCode);
        Assert.Contains("on the ResNet", o.StdOut);
        foreach (var definition in ConnectionCatalog.All)
        {
            Assert.Contains(definition.Name, o.StdOut);
            Assert.Contains(definition.OnResNet.Split(' ')[0], o.StdOut);
        }
    }
}
