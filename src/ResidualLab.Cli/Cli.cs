using System.CommandLine;
using ResidualLab.Cli.Commands;
using ResidualLab.Native;

namespace ResidualLab.Cli;

/// <summary>
/// The reslab command line. Every failure the user can fix ends in one line on stderr
/// ("reslab: error: what, where, how to fix") and a non-zero exit code: 2 for usage and config
/// errors, 3 when libtorch cannot load, 1 otherwise (a full disk, a read-only or vanished folder among
/// them). No message names a .NET exception type; --verbose adds the exception and its stack trace.
/// </summary>
internal static class Cli
{
    public const int UsageError = 2;
    public const int NativeError = 3;

    public static readonly Option<bool> Verbose = new("--verbose") { Description = "print stack traces of errors", Recursive = true };

    public static RootCommand Build()
    {
        var root = new RootCommand("ResidualLab: residual connections and their alternatives, measured.");
        root.Options.Add(Verbose);
        root.Subcommands.Add(TrainCommand.Build());
        root.Subcommands.Add(DemoCommand.Build());
        root.Subcommands.Add(ListCommand.Build());
        root.Subcommands.Add(ResumeCommand.Build());
        root.Subcommands.Add(BenchCommand.Build());
        root.Subcommands.Add(ExportCommand.Build());
        root.Subcommands.Add(EvalCommand.Build());
        root.Subcommands.Add(SweepCommand.Build());
        root.Subcommands.Add(ReportCommand.Build());
        root.Subcommands.Add(RunCommand.Build());
        root.Subcommands.Add(StatusCommand.Build());
        root.Subcommands.Add(ProbeCommand.Build());
        root.Subcommands.Add(StudyCommand.Build());
        return root;
    }

    public static int Run(string[] args)
    {
        // Off a terminal Spectre assumes 80 columns and wraps table rows and long lines: give it room.
        if (Console.IsOutputRedirected) Spectre.Console.AnsiConsole.Profile.Width = 200;
        var root = Build();
        var parsed = root.Parse(args);
        if (parsed.Errors.Count > 0)
        {
            var command = parsed.CommandResult.Command;
            string hint = command == root ? "reslab --help" : $"reslab {command.Name} --help";
            string message = parsed.UnmatchedTokens.Count > 0
                ? $"unknown command or option '{parsed.UnmatchedTokens[0]}'{Suggest.DidYouMean(parsed.UnmatchedTokens[0], Names(command))}"
                : ValueError(parsed.Errors[0].Message.ReplaceLineEndings(" "));
            Console.Error.WriteLine($"reslab: error: {message} (see '{hint}')");
            return UsageError;
        }
        bool verbose = parsed.GetValue(Verbose);
        try
        {
            return parsed.Invoke(new InvocationConfiguration { EnableDefaultExceptionHandler = false });
        }
        catch (Exception ex) when (!verbose)
        {
            return Report(ex);
        }
        catch (Exception ex)
        {
            Console.Error.WriteLine(ex.ToString());
            return Report(ex);
        }
    }

    // System.CommandLine names the .NET type it could not parse ("System.Nullable`1[System.Int32]"); say what to give instead.
    static string ValueError(string message)
    {
        var m = System.Text.RegularExpressions.Regex.Match(message, @"^Cannot parse argument '(.*)' for option '(.*)' as expected type '(.*)'");
        if (!m.Success) return message;
        string type = m.Groups[3].Value;
        string expected = type.Contains("Int32", StringComparison.Ordinal) || type.Contains("Int64", StringComparison.Ordinal) ? "a whole number"
            : type.Contains("Double", StringComparison.Ordinal) || type.Contains("Single", StringComparison.Ordinal) ? "a number"
            : type.Contains("Boolean", StringComparison.Ordinal) ? "true or false" : "another value";
        return $"{m.Groups[2].Value} '{m.Groups[1].Value}' is not valid: give {expected}";
    }

    static IEnumerable<string> Names(Command command) =>
        command.Subcommands.Select(c => c.Name).Concat(command.Options.SelectMany(o => o.Aliases.Append(o.Name)));

    static int Report(Exception ex)
    {
        var (code, message) = Unwrap(ex) switch
        {
            ConfigException c => (UsageError, c.Message),
            ArgumentException a => (UsageError, ConfigException.MessageOf(a)),
            NativeLoadException n => (NativeError, n.Message),
            TypeInitializationException t => (NativeError, $"libtorch could not be initialised: {t.InnerException?.Message ?? t.Message}"),
            DllNotFoundException d => (NativeError, $"libtorch could not be loaded: {d.Message}"),
            StorageException s => (1, s.Message),
            var e when StorageException.FaultOf(e) is { } fault => (1, StorageException.Describe(e, fault)),
            IOException io => (1, io.Message), // a file in a format reslab reads, named with what is wrong with it
            var other => (1, $"{other.Message} (an unexpected error: run again with --verbose for the details)"),
        };
        Console.Error.WriteLine($"reslab: error: {message.ReplaceLineEndings(" ")}");
        return code;
    }

    static Exception Unwrap(Exception ex) =>
        ex is AggregateException { InnerExceptions.Count: 1 } agg ? Unwrap(agg.InnerExceptions[0]) : ex;
}
