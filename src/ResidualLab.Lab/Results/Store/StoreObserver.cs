using ResidualLab.Training;

namespace ResidualLab.Results.Store;

/// <summary>
/// Writes a run's events into the store: steps, evaluations and diagnostics are buffered and written
/// in one transaction at each evaluation, before each checkpoint (a run resumed from it misses no step)
/// and at the end; the outcome closes the run's row. Peak memory
/// is the process's resident set sampled at every step of this run (it includes runs trained
/// alongside in the same process).
/// </summary>
internal sealed class StoreObserver(ResultsStore store, string runId) : ITrainingObserver
{
    readonly List<StepMetrics> _steps = [];
    readonly List<EvalMetrics> _evals = [];
    readonly List<Diagnostic> _diagnostics = [];
    long _peakRss = ProcessMemory.RssBytes();
    double _items;
    double _seconds;
    string? _unit;

    public void OnStep(StepMetrics step)
    {
        _steps.Add(step);
        _items += step.ItemsPerSecond * step.StepMs / 1000;
        _seconds += step.StepMs / 1000;
        _unit = step.Unit;
        _peakRss = Math.Max(_peakRss, ProcessMemory.RssBytes());
    }

    public void OnEval(EvalMetrics eval)
    {
        _evals.Add(eval);
        Flush();
    }

    public void OnDiagnostic(Diagnostic diagnostic) => _diagnostics.Add(diagnostic);

    public void OnCheckpoint(int step) => Flush();

    public void OnEnd(TrainResult result)
    {
        Flush();
        store.EndRun(runId, result, _seconds > 0 ? _items / _seconds : 0, _peakRss, _unit);
    }

    void Flush()
    {
        store.AddMetrics(runId, _steps, _evals, _diagnostics);
        _steps.Clear();
        _evals.Clear();
        _diagnostics.Clear();
    }
}
