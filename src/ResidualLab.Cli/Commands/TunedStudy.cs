using System.CommandLine;
using ResidualLab.Config;
using ResidualLab.Experiments;
using ResidualLab.Reports;
using ResidualLab.Results.Store;
using Spectre.Console;

namespace ResidualLab.Cli.Commands;

/// <summary>
/// How the studies with a learning-rate grid train it: tuned on the first seed, the other seeds at each arm's choice
/// (<see cref="TunedSweep"/>), or with --crossed every value at every seed.
/// </summary>
internal static class TunedStudy
{
    public static Option<bool> CrossedOption() => new("--crossed")
    {
        Description = "train every learning rate at every seed and choose on the mean over seeds (default: choose on seed 1, then train the other seeds at each arm's choice)",
    };

    /// <summary>Trains <paramref name="plan"/> into <paramref name="store"/>, in two stages unless <paramref name="crossed"/>.</summary>
    public static TunedSweepOutcome Run(SweepPlan plan, bool crossed, ResultsStore store, string outDir, int parallel, StopSignals stop)
    {
        SweepOutcome Sweep(SweepPlan p) => TerminalProgress.Track(progress => SweepRunner.Run(p, outDir, store, parallel,
            cfg => progress.For($"{cfg.Label} lr {cfg.Train.Lr} {cfg.RunId}"), line => AnsiConsole.WriteLine(line), stop.Token,
            beforeTraining: todo => SweepCommand.PrintEstimate(todo, parallel)));
        if (crossed) return new TunedSweepOutcome(plan, Sweep(plan), null);
        return TunedSweep.Run(plan, Sweep, p => TunedSweep.Load(store, p), () => stop.Requested, line => AnsiConsole.WriteLine(line));
    }

    /// <summary>The runs a study of <paramref name="plan"/> will train, for estimates and layouts.</summary>
    public static IReadOnlyList<RunConfig> Expected(SweepPlan plan, bool crossed) => crossed ? plan.Runs : TunedSweep.Projected(plan);
}
