using System.CommandLine;
using ResidualLab.Config;
using ResidualLab.Connections;
using Spectre.Console;

namespace ResidualLab.Cli.Commands;

/// <summary>reslab list connections | presets | config | cli [--format text|markdown]</summary>
internal static class ListCommand
{
    public static Command Build()
    {
        var what = new Argument<string>("what")
        {
            Description = "connections (every scheme), presets, config (every config key) or cli (every command's help)",
        };
        what.AcceptOnlyFromAmong("connections", "presets", "config", "cli");
        var format = new Option<string>("--format")
        {
            Description = "text (for the terminal) or markdown (the page docs/reference/ holds)",
            DefaultValueFactory = _ => "text",
        };
        format.AcceptOnlyFromAmong("text", "markdown");
        var command = new Command("list", "List connection schemes, presets, config keys or commands.");
        command.Arguments.Add(what);
        command.Options.Add(format);
        command.SetAction(parsed =>
        {
            bool markdown = parsed.GetValue(format) == "markdown";
            switch (parsed.GetValue(what))
            {
                case "presets": Presets(markdown); break;
                case "config": if (markdown) Console.Write(ReferencePages.Config()); else ConfigTable(); break;
                case "cli": if (markdown) Console.Write(ReferencePages.Commands()); else CommandHelp(); break;
                default: if (markdown) Console.Write(ReferencePages.Schemes()); else SchemeTable(); break;
            }
            return 0;
        });
        return command;
    }

    static void Presets(bool markdown)
    {
        foreach (var file in Directory.GetFiles(RunOptions.PresetFolder, "*.toml").Order())
        {
            string name = Path.GetFileNameWithoutExtension(file);
            Console.WriteLine(markdown ? $"- `{name}` (configs/{name}.toml)" : name);
        }
    }

    static void SchemeTable()
    {
        var table = new Table().AddColumns("name", "what it does", "options (default)", "models");
        foreach (var e in ConnectionCatalog.All)
            table.AddRow(Markup.Escape(e.Aliases is { Count: > 0 } aliases ? $"{e.Name}\n(alias: {string.Join(", ", aliases)})" : e.Name), Markup.Escape(e.Description),
                Markup.Escape(string.Join("\n", e.Options.Select(o => $"{o.Key} ({ReferencePages.Show(o.Default)}): {o.Description}"))),
                Markup.Escape(ReferencePages.Models(ConnectionCatalog.Create(e.Name).Needs)));
        AnsiConsole.Write(table);
    }

    static void ConfigTable()
    {
        var table = new Table().AddColumns("key", "type", "default", "run id", "what it sets");
        foreach (var k in ConfigSchema.Keys)
            table.AddRow(new[] { k.Key, ReferencePages.TypeName(k.Type), ReferencePages.Toml(k.Default), ReferencePages.RunId(k), k.Description }
                .Select(Markup.Escape).ToArray());
        AnsiConsole.Write(table);
    }

    static void CommandHelp()
    {
        foreach (var (path, help) in ReferencePages.Help())
        {
            string title = string.Join(' ', path.Prepend("reslab"));
            Console.WriteLine(title);
            Console.WriteLine(new string('=', title.Length));
            Console.WriteLine(help.TrimEnd());
            Console.WriteLine();
        }
    }
}
