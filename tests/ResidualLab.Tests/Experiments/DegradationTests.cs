using ResidualLab.Config;
using ResidualLab.Data;
using ResidualLab.Experiments;
using ResidualLab.Models;
using ResidualLab.Reports;
using ResidualLab.Results.Store;
using ResidualLab.Tests.Data;
using ResidualLab.Training;
using ResidualLab.Training.Tasks;

namespace ResidualLab.Tests.Experiments;

public class DegradationTests
{
    static readonly RunEnvironment Env = new("0.1.0", "abc123", ".NET 10", "0.107.0", "2.10.0", "cpu", 1, "host", "linux");

    static ConfigValues Preset()
    {
        var v = new ConfigValues();
        foreach (var o in new[] { "model.name=resnet", "model.width=4", "connection.name=residual", "train.max_iters=300" }) v.Override(o);
        return v;
    }

    static DegradationPlan PlanOf(params string[] arms) => new(32,
        arms.Length == 0 ? DegradationArm.All : DegradationArm.All.Where(a => arms.Contains(a.Name)).ToList(), [20, 56], [16, 64], [0.01, 0.1], 3);

    [Fact]
    public void The_plan_trains_every_arm_at_every_depth_rate_and_seed_and_each_run_knows_its_arm()
    {
        var plan = Degradation.Plan(Preset(), PlanOf());

        Assert.Equal(DegradationArm.All.Count * 2 * 2 * 3, plan.Runs.Count);
        Assert.Equal(["train.lr"], plan.TunedKeys);
        foreach (var arm in DegradationArm.All)
        {
            var runs = plan.Runs.Where(r => DegradationArm.Of(r.Canonical) == arm).ToList();
            Assert.Equal(12, runs.Count); // exactly its own: no run matches two arms
        }
        var tat = plan.Runs.First(r => DegradationArm.Of(r.Canonical)!.Name == "plain-tat" && r.Model.Depth == 56).Vision.Model;
        Assert.Equal(("plain", new VisionLayers(VisionInit.DeltaOrthogonal, BatchNorm: false, TatEta: 0.9)), (tat.Family, tat.Layers));
        var mlp = plan.Runs.First(r => DegradationArm.Of(r.Canonical)!.Name == "plain-mlp-orth").Vision!.Model;
        Assert.Equal(("mlp", 32, VisionInit.DeltaOrthogonal, false, (double?)null), (mlp.Family, mlp.Width, mlp.Layers.Init, mlp.Layers.BatchNorm, mlp.Layers.TatEta));
        var repvgg = plan.Runs.First(r => DegradationArm.Of(r.Canonical)!.Name == "repvgg");
        Assert.Equal(("repvgg", "none"), (repvgg.Vision!.Model.Family, repvgg.Connection.Name));
        Assert.Equal(1, plan.Runs[0].Train.Seed); // the first seed of every arm comes first
        Assert.Equal(3, plan.Runs[^1].Train.Seed);
    }

    [Fact]
    public void A_depth_TAT_cannot_reach_its_target_at_is_refused_with_its_option()
    {
        var plan = PlanOf("plain-tat") with { CnnDepths = [8] };
        var ex = Assert.Throws<ConfigException>(() => Degradation.Plan(Preset(), plan));
        Assert.Contains("--cnn-depths", ex.Message);
        Assert.Contains("cannot reach C_f(0) = 0.9", ex.Message);
    }

    /// <summary>
    /// A planted store: resnet, plain and repvgg at depth 20 and 56, learning rates 0.01 and 0.1, 3 seeds. Validation
    /// prefers 0.1 for the ResNet and 0.01 for the others; the plain net's test error rises with depth (degradation), the
    /// ResNet's falls; RepVGG's fused test errors are recorded beside its branched ones.
    /// </summary>
    static StudyData PlantedStudy()
    {
        string dir = TestSupport.TempDir();
        var degradation = PlanOf("resnet", "plain", "repvgg");
        var plan = Degradation.Plan(Preset(), degradation);
        using var store = ResultsStore.Open(dir);
        foreach (var run in plan.Runs)
        {
            string arm = DegradationArm.Of(run.Canonical)!.Name;
            bool best = arm == "resnet" ? run.Train.Lr == 0.1 : run.Train.Lr == 0.01;
            double noise = 0.001 * run.Train.Seed;
            double error = (arm, run.Model.Depth) switch
            {
                ("plain", 20) => 0.12,
                ("plain", 56) => 0.20,
                ("resnet", 20) => 0.11,
                ("resnet", 56) => 0.09,
                (_, 20) => 0.13,
                _ => 0.14,
            } + noise + (best ? 0 : 0.05);
            double val = (best ? 0.4 : 0.6) + noise;
            store.BeginRun(run, Env);
            store.AddMetrics(run.RunId, [], [new EvalMetrics(300, val, val, val)],
            [
                new(300, ClassifierEval.TestErrorName, 0, error), new(300, ClassifierEval.ValErrorName, 0, error - 0.01),
                new(300, ClassifierEval.TrainErrorName, 0, error - 0.02), new(0, "grad_norm", 0, 2.0), new(0, "grad_norm", 1, 0.5),
                .. arm == "repvgg" ? new Diagnostic[] { new(300, Deployment.FusedTestError, 0, error + 0.001), new(300, Deployment.FusedLogitDifference, 0, 1e-6) } : [],
            ]);
            store.EndRun(run.RunId, new TrainResult(RunStatus.Done, 300, new EvalMetrics(300, val, val, val), 1000, 1, 10, 0), 1000, 1 << 20, "images");
        }
        var data = StudyData.Load(store, plan.TunedKeys);
        return data;
    }

    [Fact]
    public void The_table_reads_each_arm_at_its_own_learning_rate_from_the_store()
    {
        var data = PlantedStudy();
        var rows = DegradationTable.Rows(data, Tuning.Select(data));

        Assert.Equal(6, rows.Count);
        var resnet56 = rows.Single(r => r.Arm.Name == "resnet" && r.Depth == 56);
        Assert.Equal("lr=0.1", resnet56.Tuning.Best);
        Assert.Contains("lr=0.1 is the highest tried", resnet56.Edges);
        Assert.Equal(0.092, resnet56.TestError.Mean, 9);
        Assert.Equal(4.0, resnet56.GradRatioAtInit, 9);
        var plain20 = rows.Single(r => r.Arm.Name == "plain" && r.Depth == 20);
        Assert.Equal("lr=0.01", plain20.Tuning.Best);
        Assert.Equal(0.122, plain20.TestError.Mean, 9);
        var repvgg = rows.Single(r => r.Arm.Name == "repvgg" && r.Depth == 20);
        Assert.True(repvgg.EvaluatedFused);
        Assert.Equal(0.133, repvgg.TestError.Mean, 9); // the fused net's
        Assert.Contains("resnet,56,0.1,3,", DegradationTable.Csv(rows));
        Assert.Contains("| cnn | plain | 56 | 0.01 | 3 |", DegradationTable.Markdown(rows));
    }

    [Fact]
    public void The_verdicts_say_per_arm_whether_depth_degrades_and_how_far_the_best_plain_arm_is()
    {
        var data = PlantedStudy();
        var lines = DegradationTable.Verdicts(DegradationTable.Rows(data, Tuning.Select(data)));

        Assert.Contains(lines, l => l.StartsWith("cnn plain: test error plain-56 20.20% vs plain-20 12.20%, difference +8.00 points [95% CI", StringComparison.Ordinal)
                                    && l.Contains("the deeper net is WORSE: degradation"));
        Assert.Contains(lines, l => l.StartsWith("cnn resnet: ", StringComparison.Ordinal) && l.Contains("the deeper net is better: no degradation"));
        Assert.Contains(lines, l => l.StartsWith("cnn depth 56: best plain arm (by validation error) plain test error 20.20% vs resnet-56 9.20%: gap +11.00 points [95% CI", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.StartsWith("cnn depth 20: RepVGG repvgg (fused) test error 13.30%", StringComparison.Ordinal)
                                    && l.Contains("at the grid's edge"));
    }

    [Fact]
    public void A_tiny_study_runs_end_to_end_and_its_fused_RepVGG_matches_and_is_timed()
    {
        string images = IdxTests.WriteSet(trainCount: 300, testCount: 100, size: 12);
        var preset = Preset();
        foreach (var o in new[]
                 {
                     $"data.images={images}", "data.val_images=60", "train.batch_size=32", "train.max_iters=3", "train.eval_interval=3",
                     "train.probe_interval=3", "train.eval_batches=2", "train.warmup_iters=1", "train.threads=1", "train.onednn=off",
                 })
            preset.Override(o);
        var degradation = PlanOf("resnet", "plain-tat", "repvgg") with { CnnDepths = [14], Lrs = [0.05], Seeds = 2 };
        var plan = Degradation.Plan(preset, degradation);
        string dir = TestSupport.TempDir();
        using var store = ResultsStore.Open(dir);

        var outcome = SweepRunner.Run(plan, dir, store, 1, _ => null, _ => { });
        Assert.Empty(outcome.Unfinished);
        var set = new DataCache().Images(images);
        var data = StudyData.Load(store, plan.TunedKeys);
        var measured = Degradation.MeasureDeployment(data, Tuning.Select(data), dir, store, set);
        Assert.Equal(3, measured.Count); // two runs fused, one timing
        data = StudyData.Load(store, plan.TunedKeys);
        Assert.Empty(Degradation.MeasureDeployment(data, Tuning.Select(data), dir, store, set)); // measured once, kept

        var rows = DegradationTable.Rows(data, Tuning.Select(data));
        Assert.Equal(["resnet", "plain-tat", "repvgg"], rows.Select(r => r.Arm.Name));
        var repvgg = rows.Single(r => r.Arm.Name == "repvgg");
        Assert.True(repvgg.EvaluatedFused);
        Assert.True(repvgg.FusedLogitDifference < 1e-3, $"{repvgg.FusedLogitDifference}");
        Assert.True(repvgg.FusedInferenceMicroseconds > 0 && rows[0].InferenceMicroseconds > 0);
        Assert.All(rows, r => Assert.True(double.IsFinite(r.GradRatioAtInit) && r.TestErrors.Count == 2));
        var figure = Assert.Single(DegradationPlots.All(data));
        Assert.Contains("CNN depth 14", figure.Title);
    }
}
