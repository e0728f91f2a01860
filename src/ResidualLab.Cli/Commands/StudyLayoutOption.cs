using ResidualLab.Config;
using ResidualLab.Experiments;

namespace ResidualLab.Cli.Commands;

/// <summary>The --parallel option of local sweeps and studies: a count, or 0 for the automatic layout.</summary>
internal static class StudyLayoutOption
{
    public const string Description =
        "runs trained at the same time, each in its own process; 0 (default): as many as cores on the CPU, one thread each (the most runs per hour, 'reslab bench study'), one at a time on a GPU";

    /// <summary>
    /// The layout for --parallel <paramref name="parallel"/> (0: <see cref="StudyLayout.Auto"/> for the grid's runs and
    /// device), with train.threads set to the cores' share of each run where the config leaves it at 0.
    /// </summary>
    public static StudyLayout Resolve(int parallel, ConfigValues values) => Resolve(parallel, values, () => SweepGrid.Expand(values).Runs);

    /// <summary>As <see cref="Resolve(int, ConfigValues)"/> for a study whose runs <paramref name="plan"/> lists (planned from <paramref name="values"/>).</summary>
    public static StudyLayout Resolve(int parallel, ConfigValues values, Func<IReadOnlyList<RunConfig>> plan)
    {
        int cores = Environment.ProcessorCount;
        StudyLayout layout;
        if (parallel == 0)
        {
            var runs = plan();
            layout = StudyLayout.Auto(runs.Count, runs.Count > 0 ? runs[0].Device : "cpu", cores);
        }
        else layout = new StudyLayout(parallel, parallel > 1 ? Math.Max(1, cores / parallel) : 0);
        layout.ApplyTo(values, parallel == 0 ? "--parallel 0 (auto)" : "--parallel");
        return layout;
    }
}
