using System.CommandLine;
using ResidualLab.Connections;
using Spectre.Console;

namespace ResidualLab.Cli.Commands;

/// <summary>reslab list connections | presets</summary>
internal static class ListCommand
{
    public static Command Build()
    {
        var what = new Argument<string>("what") { Description = "connections or presets" };
        what.AcceptOnlyFromAmong("connections", "presets");
        var command = new Command("list", "List connection schemes or presets.");
        command.Arguments.Add(what);
        command.SetAction(parsed =>
        {
            if (parsed.GetValue(what) == "presets")
            {
                foreach (var file in Directory.GetFiles(RunOptions.PresetFolder, "*.toml").Order())
                    Console.WriteLine(Path.GetFileNameWithoutExtension(file));
                return 0;
            }
            var table = new Table().AddColumns("name", "what it does", "options (default)", "models");
            foreach (var e in ConnectionCatalog.All)
                table.AddRow(Markup.Escape(e.Aliases is { Count: > 0 } aliases ? $"{e.Name}\n(alias: {string.Join(", ", aliases)})" : e.Name), Markup.Escape(e.Description),
                    Markup.Escape(string.Join("\n", e.Options.Select(o => $"{o.Key} ({Show(o.Default)}): {o.Description}"))),
                    Markup.Escape(Models(ConnectionCatalog.Create(e.Name).Needs)));
            AnsiConsole.Write(table);
            return 0;
        });
        return command;
    }

    /// <summary>Which models take a scheme: all, or the GPT alone and why.</summary>
    static string Models(ModelNeeds needs) =>
        needs == ModelNeeds.None ? "all" : $"gpt only (needs {ModelNeedsText.Describe(needs)})";

    static string Show(object v) => v switch
    {
        bool b => b ? "true" : "false",
        double d => d.ToString(System.Globalization.CultureInfo.InvariantCulture),
        _ => v.ToString() ?? "",
    };
}
