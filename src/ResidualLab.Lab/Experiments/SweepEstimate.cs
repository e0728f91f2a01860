using System.Diagnostics;
using ResidualLab.Config;
using ResidualLab.Data;
using ResidualLab.Training;

namespace ResidualLab.Experiments;

/// <summary>
/// The expected wall time of a sweep's unfinished runs, before it starts. Runs that differ only in seed or
/// learning rate train at the same speed, so each distinct model (a "shape") is timed once in this process,
/// at the runs' thread count: one untimed step, then a few timed steps and one evaluation. A run costs its
/// steps at that speed plus one evaluation every train.eval_interval steps and at the end; runs trained N at a
/// time divide the sum by N, and by less when N x threads exceeds the cores. Model building, data loading and
/// the slower steps of runs sharing memory bandwidth are not counted, so the figure is a lower bound.
/// </summary>
internal static class SweepEstimate
{
    /// <param name="Seconds">Expected wall time of the runs.</param>
    /// <param name="Runs">Runs counted.</param>
    /// <param name="Shapes">Distinct models timed.</param>
    /// <param name="TimingSeconds">What timing them took.</param>
    public sealed record Estimate(double Seconds, int Runs, int Shapes, double TimingSeconds)
    {
        public string Describe(int parallel) =>
            $"expected wall time: about {Duration(Seconds)} for {Runs} runs, {parallel} at a time (a lower bound: {Shapes} models timed for a few steps here in {TimingSeconds:0} s; start-up and data loading not counted)";
    }

    /// <summary>Speed of one model: a training step and one evaluation, in seconds.</summary>
    public sealed record ShapeTiming(double StepSeconds, double EvalSeconds);

    /// <summary>The canonical config without the keys that do not change a step's cost (seed, learning rates).</summary>
    public static string ShapeKey(RunConfig config) => string.Join('\n', config.Canonical.Split('\n')
        .Where(line => !(line.StartsWith("train.seed=", StringComparison.Ordinal) || line.StartsWith("train.lr=", StringComparison.Ordinal)
                         || line.StartsWith("train.min_lr=", StringComparison.Ordinal))));

    /// <summary>Evaluations a run makes: every eval_interval steps after the first, and one at the end.</summary>
    public static int Evaluations(TrainSettings train) => (train.MaxIters - 1) / train.EvalInterval + 1;

    /// <summary>Seconds of one run at <paramref name="timing"/>'s speed.</summary>
    public static double RunSeconds(RunConfig run, ShapeTiming timing) =>
        run.Train.MaxIters * timing.StepSeconds + Evaluations(run.Train) * timing.EvalSeconds;

    /// <summary>Wall time of runs worth <paramref name="runSeconds"/> in all, <paramref name="parallel"/> at a time with
    /// <paramref name="threads"/> threads each on <paramref name="cores"/> cores.</summary>
    public static double WallSeconds(double runSeconds, int parallel, int threads, int cores) =>
        runSeconds / parallel * Math.Max(1.0, (double)parallel * Math.Max(1, threads) / cores);

    /// <summary>Times each distinct model of <paramref name="runs"/> and adds up their runs.</summary>
    public static Estimate For(IReadOnlyList<RunConfig> runs, int parallel, DataCache data, int timedSteps = 3)
    {
        var clock = Stopwatch.StartNew();
        var timings = new Dictionary<string, ShapeTiming>();
        double total = 0;
        foreach (var run in runs)
        {
            string key = ShapeKey(run);
            if (!timings.TryGetValue(key, out var timing)) timings[key] = timing = Time(run, data, timedSteps);
            total += RunSeconds(run, timing);
        }
        int threads = runs.Count == 0 ? 1 : runs.Max(r => r.Threads > 0 ? r.Threads : Environment.ProcessorCount);
        return new Estimate(WallSeconds(total, parallel, threads, Environment.ProcessorCount), runs.Count, timings.Count, clock.Elapsed.TotalSeconds);
    }

    static ShapeTiming Time(RunConfig run, DataCache data, int timedSteps)
    {
        var (device, _) = RunExecutor.PrepareRuntime(run);
        using var task = RunExecutor.CreateTask(run, data, device);
        var trainer = new Trainer(task, run);
        task.Model.train();
        trainer.Step(run.Train.Lr);
        var clock = Stopwatch.StartNew();
        for (int i = 0; i < timedSteps; i++) trainer.Step(run.Train.Lr);
        double step = clock.Elapsed.TotalSeconds / timedSteps;
        clock.Restart();
        task.Evaluate(1);
        return new ShapeTiming(step, clock.Elapsed.TotalSeconds);
    }

    /// <summary>"42 s", "17 min", "2 h 05 min".</summary>
    public static string Duration(double seconds) => seconds switch
    {
        < 90 => $"{seconds:0} s",
        < 5400 => $"{seconds / 60:0} min",
        _ => $"{(int)(seconds / 3600)} h {(int)(seconds % 3600 / 60):00} min",
    };
}
