using System.Text.RegularExpressions;
using ResidualLab.Cli.Commands;
using ResidualLab.Config;
using ResidualLab.Connections;
using ResidualLab.Tests.Cli;

namespace ResidualLab.Tests.Docs;

/// <summary>
/// The reference pages in docs/reference/ are generated from the code: each must be exactly what its command prints now
/// (a new scheme, config key or option changes them), and each must cover everything it documents.
/// </summary>
public class ReferencePagesTests
{
    const string Regenerate = "scripts/generate-docs.sh";

    public static TheoryData<string, string> Pages => new()
    {
        { "schemes.md", "connections" },
        { "config.md", "config" },
        { "cli.md", "cli" },
    };

    static string Generate(string what)
    {
        var o = CliProcess.Run(["list", what, "--format", "markdown"]);
        Assert.True(o.ExitCode == 0, o.StdErr);
        return o.StdOut;
    }

    [Theory]
    [MemberData(nameof(Pages))]
    public void The_page_in_the_repository_is_what_the_code_generates_now(string page, string what)
    {
        string generated = Generate(what);
        string path = Path.Combine(TestSupport.RepoRoot(), "docs", "reference", page);
        string committed = File.Exists(path) ? File.ReadAllText(path) : "";
        if (committed == generated) return;
        var have = committed.Split('\n');
        var want = generated.Split('\n');
        int line = Enumerable.Range(0, Math.Max(have.Length, want.Length))
            .First(i => i >= have.Length || i >= want.Length || have[i] != want[i]);
        Assert.Fail($"docs/reference/{page} is not what 'reslab list {what} --format markdown' generates now "
            + $"(first difference at line {line + 1}: the page has '{(line < have.Length ? have[line] : "<end>")}', "
            + $"the code gives '{(line < want.Length ? want[line] : "<end>")}'); regenerate every reference page with: {Regenerate}");
    }

    [Fact]
    public void The_regeneration_script_writes_every_page()
    {
        string script = File.ReadAllText(Path.Combine(TestSupport.RepoRoot(), Regenerate));
        foreach (var (page, what) in Pages.Select(p => ((string)p[0], (string)p[1])))
        {
            Assert.Contains($"list {what} --format markdown", script);
            Assert.Contains(page, script);
        }
    }

    [Fact]
    public void The_schemes_page_has_a_row_for_every_scheme_of_the_catalog_with_its_options()
    {
        string page = Generate("connections");
        foreach (var e in ConnectionCatalog.All)
        {
            var row = page.Split('\n').Single(l => l.StartsWith($"| `{e.Name}`", StringComparison.Ordinal));
            Assert.Contains($"`{ConnectionCatalog.Create(e.Name).GetType().Name}`", row);
            foreach (var o in e.Options) Assert.Contains($"`{o.Key}` (", row);
        }
    }

    [Fact]
    public void The_config_page_has_a_row_for_every_key_with_its_default()
    {
        string page = Generate("config");
        foreach (var k in ConfigSchema.Keys)
            Assert.Contains(page.Split('\n'), l => l.StartsWith($"| `{k.Key}` |", StringComparison.Ordinal) && l.Contains($"| `{ReferencePages.Toml(k.Default)}` |"));
    }

    [Fact]
    public void The_cli_page_has_the_help_of_every_command_and_subcommand()
    {
        string page = Generate("cli");
        var headings = Regex.Matches(page, "^## `(reslab[^`]*)`$", RegexOptions.Multiline).Select(m => m.Groups[1].Value).ToList();
        Assert.Equal(Commands(ResidualLab.Cli.Cli.Build(), "reslab"), headings);
        Assert.Contains("reslab list <what> [options]", page);
        Assert.DoesNotContain("testhost", page);
    }

    static IEnumerable<string> Commands(System.CommandLine.Command command, string path) =>
        command.Subcommands.SelectMany(c => Commands(c, $"{path} {c.Name}")).Prepend(path);
}
