using ResidualLab.Config;
using ResidualLab.Experiments;
using ResidualLab.Reports;
using ResidualLab.Results.Store;
using ResidualLab.Training;

namespace ResidualLab.Tests.Experiments;

/// <summary>
/// Tuning on the first seed, the other seeds at each arm's choice: on planted stores, the later seeds follow the value
/// the first seed's validation loss chose, never the test loss, and the choice does not move when they arrive.
/// </summary>
public class TunedSweepTests
{
    static readonly RunEnvironment Env = new("0.1.0", "abc123", ".NET 10", "0.107.0", "2.10.0", "cpu", 1, "host", "linux");
    static readonly double[] Lrs = [1e-3, 3e-3, 1e-2];

    /// <summary>Two arms (pre-norm and none) x 3 learning rates x 3 seeds, fully crossed, tuned on train.lr.</summary>
    static SweepPlan Plan()
    {
        var runs = new List<RunConfig>();
        foreach (string scheme in new[] { "pre-norm", "none" })
            foreach (long seed in new long[] { 1, 2, 3 })
                foreach (double lr in Lrs)
                    runs.Add(TestSupport.TinyConfig($"connection.name={scheme}", $"train.lr={lr}", $"train.seed={seed}"));
        return new SweepPlan([], runs, ["train.lr"]);
    }

    /// <summary>Validation loss: pre-norm is best at 1e-3 and none at 1e-2 on seed 1; test ranks them the other way.</summary>
    static (double Val, double Test) Losses(string scheme, double lr, long seed)
    {
        double val = scheme == "pre-norm" ? (lr == 1e-3 ? 2.0 : 2.3) : (lr == 1e-2 ? 2.2 : 2.6);
        if (seed > 1 && lr != (scheme == "pre-norm" ? 1e-3 : 1e-2)) val -= 1.0; // later seeds would prefer another value
        return (val + 0.01 * seed, 5 - val);
    }

    static void Record(ResultsStore store, RunConfig run, RunStatus status = RunStatus.Done)
    {
        var (val, test) = Losses(run.Connection.Name, run.Train.Lr, run.Train.Seed);
        store.BeginRun(run, Env);
        store.EndRun(run.RunId, new TrainResult(status, 60, status == RunStatus.Done ? new EvalMetrics(60, val - 0.1, val, test) : null, 1000, 1, 10, 0), 1000, 1 << 20);
    }

    [Fact]
    public void The_tuning_stage_is_every_value_at_the_first_seed_and_the_projection_adds_one_value_per_later_seed()
    {
        var plan = Plan();
        var stage = TunedSweep.TuningStage(plan);
        Assert.Equal(6, stage.Runs.Count);
        Assert.All(stage.Runs, r => Assert.Equal(1, r.Train.Seed));
        Assert.Equal(Lrs, stage.Runs.Where(r => r.Connection.Name == "none").Select(r => r.Train.Lr));
        // values + seeds - 1 runs per arm instead of values x seeds
        Assert.Equal(2 * (3 + 3 - 1), TunedSweep.Projected(plan).Count);
    }

    [Fact]
    public void Later_seeds_run_at_the_value_the_first_seed_chose_and_the_choice_holds_when_they_arrive()
    {
        var plan = Plan();
        using var store = ResultsStore.Open(TestSupport.TempDir());
        SweepOutcome Sweep(SweepPlan p)
        {
            var todo = p.Runs.Where(r => store.Find(r.RunId) is null).ToList();
            foreach (var run in todo) Record(store, run);
            return new SweepOutcome(p.Runs.Count, p.Runs.Except(todo).Select(r => r.RunId).ToList(), todo.Select(r => r.RunId).ToList(), [], []);
        }
        var outcome = TunedSweep.Run(plan, Sweep, p => TunedSweep.Load(store, p), () => false, _ => { });

        Assert.Equal(10, outcome.Total);
        Assert.Equal(10, outcome.Trained);
        Assert.Equal(0, outcome.Skipped);
        var again = TunedSweep.Run(plan, Sweep, p => TunedSweep.Load(store, p), () => false, _ => { });
        Assert.Equal((10, 0, 10), (again.Total, again.Trained, again.Skipped)); // a study run again trains nothing
        var later = outcome.Plan.Runs.Where(r => r.Train.Seed > 1).ToList();
        Assert.Equal(4, later.Count);
        Assert.All(later.Where(r => r.Connection.Name == "pre-norm"), r => Assert.Equal(1e-3, r.Train.Lr));
        Assert.All(later.Where(r => r.Connection.Name == "none"), r => Assert.Equal(1e-2, r.Train.Lr));

        // With seeds 2 and 3 in, a mean over all of a value's seeds would now prefer 1e-3 for none (3 seeds at 1e-2 vs
        // one at 1e-3 is not a fair mean): the choice reads seed 1 only, the one seed every value has.
        var arms = Tuning.Select(TunedSweep.Load(store, outcome.Plan));
        var none = arms.Single(a => a.Group == "none");
        Assert.Equal("lr=0.01", none.Best);
        Assert.Equal([1L], none.ChosenOn);
        Assert.Equal(3, none.Chosen!.Test.Count);
        Assert.Contains("at lr=0.01 by validation of seed 1", Tuning.Note(arms, "none", null, 1));
    }

    [Fact]
    public void An_arm_with_an_unfinished_tuning_run_gets_no_later_seeds_until_it_finishes()
    {
        var plan = Plan();
        using var store = ResultsStore.Open(TestSupport.TempDir());
        foreach (var run in TunedSweep.TuningStage(plan).Runs)
            if (!(run.Connection.Name == "none" && run.Train.Lr == 3e-3)) Record(store, run);
        var full = TunedSweep.WithChoices(plan, TunedSweep.Load(store, TunedSweep.TuningStage(plan)));
        Assert.Equal(6 + 2, full.Runs.Count); // pre-norm's two later seeds only
        Assert.DoesNotContain(full.Runs, r => r.Connection.Name == "none" && r.Train.Seed > 1);
    }

    [Fact]
    public void An_arm_whose_every_value_diverged_gets_no_later_seeds()
    {
        var plan = Plan();
        using var store = ResultsStore.Open(TestSupport.TempDir());
        foreach (var run in TunedSweep.TuningStage(plan).Runs)
            Record(store, run, run.Connection.Name == "none" ? RunStatus.Diverged : RunStatus.Done);
        var full = TunedSweep.WithChoices(plan, TunedSweep.Load(store, TunedSweep.TuningStage(plan)));
        Assert.Equal(["pre-norm"], full.Runs.Where(r => r.Train.Seed > 1).Select(r => r.Connection.Name).Distinct());
    }
}
