using ResidualLab.Config;
using ResidualLab.Experiments;
using ResidualLab.Results.Store;

namespace ResidualLab.Cluster;

/// <summary>One run of a results folder as a cluster user sees it: its state and its latest cluster task.</summary>
internal sealed record RunView(string RunId, string Label, string State, string? Task, string? Note);

/// <summary>
/// Where every run of a results folder stands, from the store, the recorded job arrays and, when squeue
/// answers, the cluster's queue. States: planned (never submitted), queued, running, done, diverged,
/// failed (the run threw, or its task ended without finishing it: killed, cancelled, out of time) and
/// interrupted (stopped on request).
/// </summary>
internal static class SweepStatus
{
    public const string Planned = "planned";
    public const string Queued = "queued";
    public const string Submitted = "submitted";

    /// <param name="live">Queued and running tasks by name (JOBID_TASK); null when the queue cannot be asked.</param>
    public static IReadOnlyList<RunView> Of(string resultsDir, ResultsStore store, IReadOnlyDictionary<string, string>? live)
    {
        var records = store.Runs().ToDictionary(r => r.RunId);
        var latestTask = new Dictionary<string, ClusterTask>();
        foreach (var task in store.Submissions()) latestTask[task.RunId] = task; // oldest first: the last one wins
        var ids = SweepFolder.PlannedRunIds(resultsDir).Union(records.Keys).Order(StringComparer.Ordinal);

        var views = new List<RunView>();
        foreach (var id in ids)
        {
            records.TryGetValue(id, out var record);
            latestTask.TryGetValue(id, out var task);
            string label = record?.Label ?? SweepFolder.Load(resultsDir, id).Label;
            string? queueState = task is not null && live is not null && live.TryGetValue(task.Name, out var s) ? s : null;
            var (state, note) = (record, task, queueState, live) switch
            {
                ({ } r, _, _, _) when RunState.IsFinal(r.Status) => (r.Status, r.Status == RunState.Diverged ? r.Error : null),
                (_, _, "PENDING", _) => (Queued, null),
                (_, _, { } q, _) => (RunState.Running, q == "RUNNING" ? null : q.ToLowerInvariant()),
                ({ Status: RunState.Running }, { }, null, { }) => (RunState.Failed, "its task ended before the run finished (killed, cancelled or out of time)"),
                ({ } r, _, _, _) => (r.Status, r.Error),
                (null, { }, null, { }) => (RunState.Failed, "its task ended before the run started (cancelled or failed to start)"),
                (null, { }, null, null) => (Submitted, "squeue is not available here"),
                _ => (Planned, null),
            };
            views.Add(new RunView(id, label, state, task?.Name, note));
        }
        return views.OrderBy(v => v.Label, StringComparer.Ordinal).ThenBy(v => v.RunId, StringComparer.Ordinal).ToList();
    }

    /// <summary>
    /// The runs of <paramref name="plan"/>, in its order, that a submission should include: every unfinished
    /// run not in the queue, or with <paramref name="onlyFailed"/> only the failed and interrupted ones.
    /// </summary>
    public static IReadOnlyList<string> ToSubmit(SweepPlan plan, IReadOnlyList<RunView> views, bool onlyFailed)
    {
        var wanted = views.Where(v => v.State is RunState.Failed or RunState.Interrupted || (!onlyFailed && v.State == Planned))
            .Select(v => v.RunId).ToHashSet();
        return plan.Runs.Select(r => r.RunId).Where(wanted.Contains).ToList();
    }
}
