using System.Globalization;
using ResidualLab.Config;
using ResidualLab.Data;
using ResidualLab.Reports;
using ResidualLab.Results.Store;

namespace ResidualLab.Experiments;

/// <summary>
/// One arm of the degradation study: a way to build a net of any depth, named, with the config keys that make it.
/// </summary>
/// <param name="Kind">cnn (the CIFAR ResNet family, depth 6n+2) or mlp (depth 2k+2).</param>
/// <param name="Residual">Whether it keeps shortcuts at inference (the baseline of its family).</param>
/// <param name="TrainedPlain">Whether it trains without any shortcut or branch (the plain arms that answer the question).</param>
internal sealed record DegradationArm(string Name, string Kind, bool Residual, bool TrainedPlain, string Description,
    IReadOnlyList<(string Key, object Value)> Keys)
{
    // Every arm sets every key that tells the arms apart, defaults included, so that applying an arm's keys to a run
    // leaves the run unchanged exactly when it is that arm's (see Of).
    static readonly (string, object)[] Plain = [("connection.name", "none"), ("connection.norm", false)];
    static readonly (string, object)[] He = [("model.init", "gpt2"), ("model.batch_norm", true), ("model.activation", "relu")];
    static readonly (string, object)[] DeltaNoBn = [("model.init", "delta-orthogonal"), ("model.batch_norm", false), ("model.activation", "relu")];
    static readonly (string, object)[] DeltaNoBnTat = [("model.init", "delta-orthogonal"), ("model.batch_norm", false), ("model.activation", "tat")];

    /// <summary>Every arm, CNNs first; each family's residual baseline first.</summary>
    public static readonly IReadOnlyList<DegradationArm> All =
    [
        new("resnet", "cnn", true, false, "ResNet: shortcuts, batch norm, He init (He et al. 2016)", [("model.name", "resnet"), ("connection.name", "residual"), .. He]),
        new("plain", "cnn", false, true, "plain: the ResNet minus its shortcuts, batch norm, He init (He et al. 2016)", [("model.name", "plain"), .. Plain, .. He]),
        new("plain-delta", "cnn", false, true, "plain, no batch norm, delta-orthogonal init, ReLU (Xiao et al. 2018)", [("model.name", "plain"), .. Plain, .. DeltaNoBn]),
        new("plain-tat", "cnn", false, true, "plain, no batch norm, delta-orthogonal init, TAT leaky ReLU (Zhang et al. 2022)", [("model.name", "plain"), .. Plain, .. DeltaNoBnTat]),
        new("repvgg", "cnn", false, false, "RepVGG: trained with 3x3, 1x1 and identity branches, evaluated fused into the plain net (Ding et al. 2021)",
            [("model.name", "repvgg"), .. Plain, .. He]),
        new("res-mlp", "mlp", true, false, "residual MLP: shortcuts, batch norm, He init", [("model.name", "mlp"), ("connection.name", "residual"), .. He]),
        new("plain-mlp", "mlp", false, true, "plain MLP: batch norm, He init", [("model.name", "mlp"), .. Plain, .. He]),
        new("plain-mlp-orth", "mlp", false, true, "plain MLP, no batch norm, orthogonal init, ReLU", [("model.name", "mlp"), .. Plain, .. DeltaNoBn]),
        new("plain-mlp-tat", "mlp", false, true, "plain MLP, no batch norm, orthogonal init, TAT leaky ReLU", [("model.name", "mlp"), .. Plain, .. DeltaNoBnTat]),
    ];

    public static IReadOnlyList<string> Names => All.Select(a => a.Name).ToList();

    public void ApplyTo(ConfigValues v, string origin)
    {
        foreach (var (key, value) in Keys) v.Set(key, value, origin);
    }

    /// <summary>The arm of a run, by its canonical config: the arm whose keys, set on the run's config, leave it unchanged; null for none.</summary>
    public static DegradationArm? Of(string canonical) => All.FirstOrDefault(arm =>
    {
        var v = ConfigValues.FromCanonical(canonical, "a run of the store");
        arm.ApplyTo(v, $"arm {arm.Name}");
        try { return RunConfig.From(v).Canonical == canonical; }
        catch (ConfigException) { return false; } // e.g. a residual run given connection.norm: not this arm's
    });
}

/// <summary>How much of the study to run.</summary>
/// <param name="MlpWidth">Hidden width of the MLPs.</param>
/// <param name="Lrs">The learning rates every arm is trained at; each arm is judged at its best by validation loss.</param>
internal sealed record DegradationPlan(int MlpWidth, IReadOnlyList<DegradationArm> Arms, IReadOnlyList<int> CnnDepths,
    IReadOnlyList<int> MlpDepths, IReadOnlyList<double> Lrs, int Seeds)
{
    /// <summary>
    /// He et al. 2016, sec. 4.2: 64k steps of 128, lr divided by 10 at 32k and 48k, 16 channels, random crops, all
    /// images; a warmup of 2000 steps (3%) for every arm, as the preset has one of 3%, since the nets without batch norm
    /// need one at high learning rates. Applied to the preset before --set.
    /// </summary>
    public static void ApplyFull(ConfigValues v)
    {
        const string origin = "--full";
        v.Set("model.width", 16L, origin);
        v.Set("data.train_images", 0L, origin);
        v.Set("data.augment", true, origin);
        v.Set("train.batch_size", 128L, origin);
        v.Set("train.max_iters", 64000L, origin);
        v.Set("train.warmup_iters", 2000L, origin);
        v.Set("train.weight_decay", 1e-4, origin);
        v.Set("train.momentum", 0.9, origin);
        v.Set("train.eval_interval", 8000L, origin);
        v.Set("train.probe_interval", 32000L, origin);
    }

    public IReadOnlyList<int> DepthsOf(DegradationArm arm) => arm.Kind == "cnn" ? CnnDepths : MlpDepths;
}

/// <summary>
/// The degradation study (He et al. 2016, sec. 4.1-4.2, fig. 1 and 6), second edition: does a deep plain net train
/// worse than a shallow one because it is plain, or because it is plain and initialised as in 2015? Arms: the ResNet,
/// its plain twin as He et al. built it, the plain net with delta-orthogonal init (Xiao et al. 2018), with TAT (Zhang
/// et al. 2022) and RepVGG trained with branches and evaluated fused (Ding et al. 2021); the same for a deep MLP.
/// Every arm at every depth is trained at each learning rate of the grid at the first seed, and at the other seeds at its
/// learning rate chosen there (<see cref="TunedSweep"/>; every rate at every seed with --crossed), into one results store;
/// <see cref="Reports.DegradationTable"/> reads it back.
/// </summary>
internal static class Degradation
{
    public const string Preset = "degradation";

    /// <summary>Every run, seed by seed (so the first seed of every arm finishes first), then family, depth, arm and learning rate.</summary>
    public static SweepPlan Plan(ConfigValues preset, DegradationPlan plan)
    {
        var runs = new List<RunConfig>();
        var seen = new HashSet<string>();
        for (long seed = 1; seed <= plan.Seeds; seed++)
            foreach (var arm in plan.Arms)
                foreach (int depth in plan.DepthsOf(arm))
                    foreach (double lr in plan.Lrs)
                    {
                        var v = preset.Clone();
                        arm.ApplyTo(v, $"arm {arm.Name}");
                        if (arm.Kind == "mlp") v.Set("model.width", (long)plan.MlpWidth, "--mlp-width");
                        v.Set("model.depth", (long)depth, arm.Kind == "cnn" ? "--cnn-depths" : "--mlp-depths");
                        v.Set("train.lr", lr, "--lrs");
                        v.Set("train.seed", seed, "--seeds");
                        var config = RunConfig.From(v);
                        if (seen.Add(config.RunId)) runs.Add(config);
                    }
        var axes = new List<SweepAxis>
        {
            new("arm", plan.Arms.Select(a => (object)a.Name).ToList(), "--arms"),
            new("model.depth", plan.CnnDepths.Concat(plan.MlpDepths).Distinct().Select(d => (object)(long)d).ToList(), "--cnn-depths, --mlp-depths"),
            new("train.lr", plan.Lrs.Select(x => (object)x).ToList(), "--lrs"),
            new("train.seed", Enumerable.Range(1, plan.Seeds).Select(s => (object)(long)s).ToList(), "--seeds"),
        };
        return new SweepPlan(axes, runs, ["train.lr"]);
    }

    /// <summary>
    /// Measures what RepVGG is at inference, for each depth where it was trained: every run at its chosen learning rate
    /// evaluated fused, and the first seed's fused and branched nets timed against the ResNet's of the same depth and
    /// learning-rate choice, interleaved (<see cref="Deployment"/>). Each measurement is made once and kept in the store.
    /// </summary>
    /// <returns>What was measured, one line each.</returns>
    public static IReadOnlyList<string> MeasureDeployment(StudyData data, IReadOnlyList<ArmTuning> tuning, string resultsDir, ResultsStore store, ImageSet images)
    {
        var lines = new List<string>();
        var chosen = tuning.Where(t => t.Best is not null)
            .Select(t => (Tuning: t, Arm: DegradationArm.Of(data.Of(t.Group, t.Depth).First().Run.Config)))
            .Where(c => c.Arm is { Kind: "cnn" }).ToList();
        foreach (var depth in chosen.GroupBy(c => c.Tuning.Depth))
        {
            var repvgg = depth.FirstOrDefault(c => c.Arm!.Name == "repvgg").Tuning;
            if (repvgg is null) continue;
            List<RunData> Runs(ArmTuning arm) => data.Of(arm.Group, arm.Depth).Where(r => r.Tuned == arm.Best && r.Done).OrderBy(r => r.Run.Seed).ToList();
            foreach (var run in Runs(repvgg).Where(r => !r.Diagnostics.Any(d => d.Name == Deployment.FusedTestError)))
            {
                Deployment.RecordFused(SweepFolder.Load(resultsDir, run.Run.RunId), SweepFolder.RunDir(resultsDir, run.Run.RunId), images, store);
                lines.Add($"{run.Run.Label} at {repvgg.Best}: evaluated fused");
            }
            var resnet = depth.FirstOrDefault(c => c.Arm!.Residual).Tuning;
            if (resnet is null || Runs(repvgg).FirstOrDefault() is not { } a || Runs(resnet).FirstOrDefault() is not { } b) continue;
            if (a.Diagnostics.Any(d => d.Name == Deployment.FusedInferenceMicroseconds) && b.Diagnostics.Any(d => d.Name == Deployment.InferenceMicroseconds)) continue;
            Deployment.RecordInferenceTimes(SweepFolder.Load(resultsDir, b.Run.RunId), SweepFolder.RunDir(resultsDir, b.Run.RunId),
                SweepFolder.Load(resultsDir, a.Run.RunId), SweepFolder.RunDir(resultsDir, a.Run.RunId), images, store);
            lines.Add($"depth {depth.Key}: inference timed, {b.Run.Label} against {a.Run.Label} branched and fused, interleaved");
        }
        return lines;
    }

    public static string Describe(SweepPlan plan, DegradationPlan degradation, bool crossed)
    {
        var depths = degradation.Arms.Select(a => a.Kind).Distinct()
            .Select(kind => $"{kind.ToUpperInvariant()} {string.Join(",", degradation.DepthsOf(degradation.Arms.First(a => a.Kind == kind)))}");
        string grid = string.Create(CultureInfo.InvariantCulture, $"{degradation.Arms.Count} arms x depths ({string.Join("; ", depths)}) x {degradation.Lrs.Count} learning rates ({string.Join(", ", degradation.Lrs)})");
        return crossed
            ? string.Create(CultureInfo.InvariantCulture, $"{plan.Runs.Count} runs: {grid} x {degradation.Seeds} seeds")
            : string.Create(CultureInfo.InvariantCulture, $"{TunedSweep.Projected(plan).Count} runs: {grid} at seed 1, then {degradation.Seeds - 1} more seed(s) at each arm's choice");
    }
}
