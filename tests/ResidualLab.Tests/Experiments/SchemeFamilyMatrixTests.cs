using ResidualLab.Config;
using ResidualLab.Connections;
using ResidualLab.Data;
using ResidualLab.Tests.Data;
using ResidualLab.Training;
using ResidualLab.Training.Tasks;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace ResidualLab.Tests.Experiments;

/// <summary>
/// Every scheme on every model family (and `none` with and without its norm): two steps on tiny data finish, with
/// the loss of the first step near ln(classes) or ln(vocabulary) (what an initialisation that favours no class
/// gives). A divergence fails the test: at these settings every pair trains. A scheme which needs more of the model
/// than the vision models provide (<see cref="ModelNeeds"/>) is refused by the config in one line. After the last combination, the outcomes are written as a markdown table (<see cref="MatrixTable"/>).
/// </summary>
[Trait(Slow.Category, Slow.Value)]
public class SchemeFamilyMatrixTests(ITestOutputHelper output, SchemeFamilyMatrixTests.MatrixTable table)
    : IClassFixture<SchemeFamilyMatrixTests.MatrixTable>
{
    static readonly string[] Families = ["gpt", "resnet", "plain", "mlp"];

    /// <summary>
    /// The outcome of every combination run, written when the class's tests are done to
    /// <c>scheme-family-matrix.md</c> beside the test assembly: one row per scheme (and option), one column
    /// per family; a combination the run's filter left out reads "not run".
    /// </summary>
    public sealed class MatrixTable : IDisposable
    {
        readonly Dictionary<(string Row, string Family), string> _cells = [];
        readonly Dictionary<string, double> _chance = [];

        public static string FilePath => Path.Combine(AppContext.BaseDirectory, "scheme-family-matrix.md");

        /// <param name="chance">The family's ln(classes) or ln(vocabulary), shown in its column's header; null: not known from this outcome.</param>
        public void Record(string row, string family, string outcome, double? chance = null)
        {
            _cells[(row, family)] = outcome;
            if (chance is { } c) _chance[family] = c;
        }

        public string Markdown()
        {
            var rows = Combinations().Select(c => Row((string)c[1], (string)c[2])).Distinct();
            var lines = new List<string>
            {
                $"| scheme | {string.Join(" | ", Families.Select(f => _chance.TryGetValue(f, out double c) ? $"{f} (ln {c:0.000})" : f))} |",
                $"|---|{string.Concat(Families.Select(_ => "---|"))}",
            };
            lines.AddRange(rows.Select(r => $"| {r} | {string.Join(" | ", Families.Select(f => _cells.GetValueOrDefault((r, f), "not run")))} |"));
            return string.Join("\n", lines) + "\n";
        }

        public void Dispose()
        {
            if (_cells.Count > 0) File.WriteAllText(FilePath, Markdown());
        }
    }

    static string Row(string scheme, string option) => option.Length == 0 ? $"`{scheme}`" : $"`{scheme}`, {option}";

    public static TheoryData<string, string, string> Combinations()
    {
        var data = new TheoryData<string, string, string>();
        foreach (string family in Families)
            foreach (string scheme in ConnectionCatalog.Names)
            {
                data.Add(family, scheme, "");
                if (ConnectionCatalog.Find(scheme)!.Options.Any(o => o.Key == "norm")) data.Add(family, scheme, "connection.norm=false");
            }
        return data;
    }

    /// <summary>Records the loss of every step.</summary>
    sealed class StepLosses : ITrainingObserver
    {
        public List<double> Losses { get; } = [];
        public void OnStep(StepMetrics step) => Losses.Add(step.Loss);
    }

    [Theory]
    [MemberData(nameof(Combinations))]
    public void Every_scheme_trains_on_every_family(string family, string scheme, string option)
    {
        var settings = new List<string>
        {
            $"model.name={family}", $"connection.name={scheme}", "train.max_iters=2", "train.warmup_iters=0",
            "train.eval_interval=100", "train.eval_batches=1", "train.seed=3",
        };
        if (option.Length > 0) settings.Add(option);
        if (family == "gpt") settings.AddRange(["train.batch_size=8", "model.n_layer=2", "model.d_model=16", "model.n_head=2", "model.block_size=16", "train.lr=1e-3"]);
        else settings.AddRange(["train.batch_size=32", "data.val_images=8", $"model.depth={(family == "mlp" ? 4 : 8)}", "model.width=4", "train.lr=0.1", "train.weight_decay=1e-4", "train.grad_clip=0"]);
        var v = new ConfigValues();
        foreach (var s in settings) v.Override(s);
        if (family != "gpt" && ConnectionCatalog.Create(scheme).Needs != ModelNeeds.None)
        {
            var refused = Assert.Throws<ConfigException>(() => RunConfig.From(v));
            output.WriteLine($"{family} {scheme}: {refused.Message}");
            table.Record(Row(scheme, option), family, "not applicable");
            Assert.Contains($"connection '{scheme}' does not apply to the vision models: it needs ", refused.Message);
            Assert.DoesNotContain('\n', refused.Message);
            return;
        }
        var config = RunConfig.From(v);
        var losses = new StepLosses();

        TrainResult result;
        double chance;
        if (family == "gpt")
        {
            var corpus = TestSupport.TinyCorpus();
            using var task = new LanguageModelTask(config, config.Gpt, corpus, CPU);
            result = new Trainer(task, config).Run(losses);
            chance = Math.Log(corpus.VocabSize);
        }
        else
        {
            var set = ImageSets.FromFolder("toy", IdxTests.WriteSet(trainCount: 40, testCount: 4, size: 12));
            using var task = new ImageClassificationTask(config, config.Vision, set, CPU);
            result = new Trainer(task, config).Run(losses);
            chance = Math.Log(set.Classes);
        }

        string outcome = result.Status == RunStatus.Diverged
            ? $"diverged: {result.Note}"
            : $"finished, first loss {losses.Losses[0]:0.000}";
        output.WriteLine($"{family} {scheme} {option}: {outcome} (ln {chance:0.000})");
        table.Record(Row(scheme, option), family, outcome, chance);
        Assert.True(result.Status == RunStatus.Done, $"{family} {scheme} {option}: {outcome}");
        // The GPT's head starts at std 0.02: its loss is ln(vocabulary) to a few hundredths. The vision
        // classifiers' last layer has libtorch's default init on features of variance 1 to 2 (a residual
        // stream adds its branches): their first loss, on a batch of 32, lies within a nat of ln(classes); a
        // mis-scaled stream gives 17 to 28.
        double tolerance = family == "gpt" ? 0.5 : 1.0;
        Assert.True(Math.Abs(losses.Losses[0] - chance) < tolerance, $"{family} {scheme} {option}: first loss {losses.Losses[0]:0.000}, ln(classes) {chance:0.000}");
    }
}
