using System.Globalization;
using System.Text;
using ResidualLab.Config;
using ResidualLab.Training.Tasks;

namespace ResidualLab.Experiments;

/// <summary>One arm of the degradation experiment: a family of nets with or without shortcuts.</summary>
/// <param name="Kind">cnn or mlp.</param>
/// <param name="Residual">True for the residual net, false for its plain twin.</param>
internal sealed record DegradationArm(string Kind, bool Residual)
{
    public string Name => (Kind, Residual) switch
    {
        ("cnn", true) => "resnet",
        ("cnn", false) => "plain",
        (_, true) => "res-mlp",
        _ => "plain-mlp",
    };

    /// <summary>The model family and connection keys that make this arm.</summary>
    public void ApplyTo(ConfigValues v, string origin)
    {
        v.Set("model.name", Kind == "cnn" ? (Residual ? "resnet" : "plain") : "mlp", origin);
        v.Set("connection.name", Residual ? "residual" : "none", origin);
        if (!Residual) v.Set("connection.norm", false, origin); // the paper's plain net: batch norm inside F only
    }
}

/// <summary>How much of the paper's experiment to run.</summary>
/// <param name="Full">The paper's width and schedule instead of the preset's reduced ones.</param>
/// <param name="MlpWidth">Hidden width of the MLPs.</param>
internal sealed record DegradationPlan(bool Full, int MlpWidth)
{
    /// <summary>He et al. 2016, sec. 4.2: 64k steps of 128, lr 0.1 divided by 10 at 32k and 48k, 16 channels,
    /// random crops, all images; applied to the preset before --set.</summary>
    public void ApplyTo(ConfigValues v)
    {
        if (!Full) return;
        const string origin = "--full";
        v.Set("model.width", 16L, origin);
        v.Set("data.train_images", 0L, origin);
        v.Set("data.augment", true, origin);
        v.Set("train.batch_size", 128L, origin);
        v.Set("train.max_iters", 64000L, origin);
        v.Set("train.lr", 0.1, origin);
        v.Set("train.weight_decay", 1e-4, origin);
        v.Set("train.momentum", 0.9, origin);
        v.Set("train.eval_interval", 2000L, origin);
    }
}

/// <summary>One run of the grid and its result.</summary>
internal sealed record DegradationRun(DegradationArm Arm, int Depth, RunConfig Config, ClassifierResult Result);

/// <summary>One row of the table: an arm at a depth, summarised over seeds.</summary>
internal sealed record DegradationRow(
    DegradationArm Arm, int Depth, int Seeds, Summary TrainLoss, Summary TrainError, Summary TestError,
    Summary BatchError, Summary RatioAtInit, Summary RatioDuringTraining, Summary RatioAtEnd);

/// <summary>
/// The degradation experiment of He et al. 2016 (sec. 4.1-4.2, fig. 1 and 6): the same nets with and
/// without shortcuts at growing depth, and the probe for its usual explanation, vanishing gradients:
/// the first-to-last gradient-norm ratio of every net at initialisation and during training.
/// </summary>
internal static class Degradation
{
    public static IReadOnlyList<(DegradationArm Arm, int Depth, RunConfig Config)> Grid(
        ConfigValues preset, DegradationPlan plan, IReadOnlyList<int> cnnDepths, IReadOnlyList<int> mlpDepths, IReadOnlyList<long> seeds)
    {
        var runs = new List<(DegradationArm, int, RunConfig)>();
        foreach (long seed in seeds)
            foreach (var (kind, depths) in new[] { ("cnn", cnnDepths), ("mlp", mlpDepths) })
                foreach (int depth in depths)
                    foreach (bool residual in new[] { false, true })
                    {
                        var arm = new DegradationArm(kind, residual);
                        var v = preset.Clone();
                        arm.ApplyTo(v, "degradation grid");
                        if (kind == "mlp") v.Set("model.width", (long)plan.MlpWidth, "--mlp-width");
                        v.Set("model.depth", (long)depth, "degradation grid");
                        v.Set("train.seed", seed, "degradation grid");
                        runs.Add((arm, depth, RunConfig.From(v)));
                    }
        return runs;
    }

    public static IReadOnlyList<DegradationRow> Table(IEnumerable<DegradationRun> runs) =>
        runs.Where(r => r.Result.Final is not null)
            .GroupBy(r => (r.Arm, r.Depth))
            .OrderBy(g => g.Key.Arm.Kind).ThenBy(g => g.Key.Arm.Residual).ThenBy(g => g.Key.Depth)
            .Select(g =>
            {
                Summary S(Func<DegradationRun, double> f) => new(g.Select(f).ToList());
                return new DegradationRow(g.Key.Arm, g.Key.Depth, g.Count(),
                    S(r => r.Result.Final!.TrainLoss), S(r => r.Result.Final!.TrainError), S(r => r.Result.Final!.TestError),
                    S(r => r.Result.Final!.BatchError), S(r => r.Result.AtInit.FirstToLast), S(r => r.Result.DuringTraining.FirstToLast),
                    S(r => r.Result.Final!.GradRatio));
            })
            .ToList();

    /// <summary>
    /// The answers, in numbers: does the deepest plain net train worse than the shallowest, does the
    /// deepest residual net not, and do the plain nets' first-layer gradients vanish.
    /// </summary>
    public static IReadOnlyList<string> Verdicts(IReadOnlyList<DegradationRow> rows)
    {
        var lines = new List<string>();
        foreach (string kind in new[] { "cnn", "mlp" })
        {
            DegradationRow? Row(bool residual, bool deepest)
            {
                var arm = rows.Where(r => r.Arm.Kind == kind && r.Arm.Residual == residual).OrderBy(r => r.Depth).ToList();
                return arm.Count < 2 ? null : deepest ? arm[^1] : arm[0];
            }
            var (plainShallow, plainDeep, resShallow, resDeep) = (Row(false, false), Row(false, true), Row(true, false), Row(true, true));
            if (plainShallow is null || plainDeep is null) continue;

            string P(double x) => (100 * x).ToString("0.0", CultureInfo.InvariantCulture) + "%";
            bool plainWorse = plainDeep.TrainError.Mean > plainShallow.TrainError.Mean;
            var sb = new StringBuilder($"{kind}: plain-{plainDeep.Depth} train error {P(plainDeep.TrainError.Mean)} vs plain-{plainShallow.Depth} {P(plainShallow.TrainError.Mean)}: ");
            sb.Append(plainWorse ? "the deeper plain net trains WORSE" : "the deeper plain net does NOT train worse");
            if (resShallow is not null && resDeep is not null)
            {
                bool resWorse = resDeep.TrainError.Mean > resShallow.TrainError.Mean;
                sb.Append($"; {resDeep.Arm.Name}-{resDeep.Depth} {P(resDeep.TrainError.Mean)} vs {resShallow.Arm.Name}-{resShallow.Depth} {P(resShallow.TrainError.Mean)}: ")
                  .Append(resWorse ? "the deeper residual net trains worse too" : "the deeper residual net does not")
                  .Append(plainWorse && !resWorse ? ". Degradation reproduced." : ". Degradation NOT reproduced at this budget.");
            }
            lines.Add(sb.ToString());

            // Vanishing gradients: the first layer's gradient shrinking relative to the last layer's as
            // depth grows. Criterion: the deep plain net's ratio below a tenth of the shallow one's.
            foreach (var (when, get) in new (string, Func<DegradationRow, Summary>)[]
                     {
                         ("at init", r => r.RatioAtInit),
                         ("of the per-layer norms averaged over training", r => r.RatioDuringTraining),
                         ("in the last evaluation interval", r => r.RatioAtEnd),
                     })
            {
                double deep = get(plainDeep).Mean, shallow = get(plainShallow).Mean;
                string g(double x) => x.ToString("G3", CultureInfo.InvariantCulture);
                string res = resDeep is null ? "" : $"; {resDeep.Arm.Name}-{resDeep.Depth} {g(get(resDeep).Mean)}";
                string verdict = deep < 0.1 * shallow ? "the plain net's first-layer gradients VANISH with depth"
                    : deep > 10 * shallow ? "no vanishing: the plain net's first-layer gradients GROW with depth (over 10x the shallow net's ratio)"
                    : "no vanishing (criterion: below 0.1x of the shallow net's ratio)";
                lines.Add($"{kind} first-to-last gradient-norm ratio {when}: plain-{plainDeep.Depth} {g(deep)} vs plain-{plainShallow.Depth} {g(shallow)} ({g(deep / shallow)}x){res}: {verdict}");
            }
        }
        return lines;
    }

    public static string ToCsv(IEnumerable<DegradationRow> rows)
    {
        var sb = new StringBuilder("kind,arm,depth,seeds,train_loss,train_error,train_error_std,test_error,test_error_std,batch_error,grad_ratio_init,grad_ratio_training,grad_ratio_end\n");
        foreach (var r in rows)
            sb.AppendLine(string.Join(',', r.Arm.Kind, r.Arm.Name, r.Depth, r.Seeds, F(r.TrainLoss.Mean), F(r.TrainError.Mean), F(r.TrainError.Std),
                F(r.TestError.Mean), F(r.TestError.Std), F(r.BatchError.Mean), F(r.RatioAtInit.Mean), F(r.RatioDuringTraining.Mean), F(r.RatioAtEnd.Mean)));
        return sb.ToString();
    }

    /// <summary>Every run's evaluation curve, one line per evaluation.</summary>
    public static string CurvesCsv(IEnumerable<DegradationRun> runs)
    {
        var sb = new StringBuilder("arm,depth,seed,step,epoch,train_loss,train_error,test_loss,test_error,batch_loss,batch_error,grad_ratio\n");
        foreach (var r in runs)
            foreach (var e in r.Result.Curve)
                sb.AppendLine(string.Join(',', r.Arm.Name, r.Depth, r.Config.Train.Seed, e.Step, e.Epoch, F(e.TrainLoss), F(e.TrainError),
                    F(e.TestLoss), F(e.TestError), F(e.BatchLoss), F(e.BatchError), F(e.GradRatio)));
        return sb.ToString();
    }

    static string F(double x) => x.ToString("0.######", CultureInfo.InvariantCulture);
}
