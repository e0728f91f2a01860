using ResidualLab.Connections;

namespace ResidualLab.Tests.Cli;

public class ListTests
{
    [Fact]
    public void List_connections_shows_every_scheme_and_the_models_it_applies_to()
    {
        var o = CliProcess.Run(["list", "connections"]);

        Assert.Equal(0, o.ExitCode);
        foreach (var definition in ConnectionCatalog.All)
            Assert.Contains(definition.Name, o.StdOut);
        Assert.Contains("gpt only", o.StdOut);
    }
}
