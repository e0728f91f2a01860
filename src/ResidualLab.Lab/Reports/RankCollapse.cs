using System.Globalization;
using System.Text;

namespace ResidualLab.Reports;

/// <summary>
/// One arm's token cosine (the mean cosine between a sequence's distinct token representations, <c>token_cosine</c>)
/// at the stream's input and after its last block, at init and after training, mean over its runs.
/// </summary>
/// <param name="Runs">Runs with the reading.</param>
/// <param name="LargestAtInit">The largest over positions at init (where along depth the tokens are most alike).</param>
internal sealed record TokenCosineRow(string Group, int Depth, int Runs, double InputAtInit, double OutputAtInit, double LargestAtInit,
    double InputTrained, double OutputTrained, double LargestTrained);

/// <summary>
/// Rank collapse from the stream probes: per arm, how alike the tokens are at the embedding and after the last block,
/// at initialisation (the first probe step) and trained (the last). A stream whose tokens have cosine near 1 carries no
/// per-token information for attention to use: without a skip, repeated attention averaging drives it there at init.
/// </summary>
internal static class RankCollapse
{
    /// <summary>The probe reading.</summary>
    public const string Reading = "token_cosine";

    /// <summary>One row per group and depth with token-cosine readings, in the order of <paramref name="data"/>'s groups.</summary>
    public static IReadOnlyList<TokenCosineRow> Rows(StudyData data) =>
        (from g in data.Groups
         from d in data.Depths
         let runs = data.Of(g, d).Where(r => r.Diagnostics.Any(x => x.Name == Reading)).ToList()
         where runs.Count > 0
         let init = runs.Select(r => DiagnosticPlots.At(r, Reading, first: true)).ToList()
         let trained = runs.Select(r => DiagnosticPlots.At(r, Reading, first: false)).ToList()
         select new TokenCosineRow(g, d, runs.Count,
             init.Average(x => x[0].Value), init.Average(x => x[^1].Value), init.Average(x => x.Max(p => p.Value)),
             trained.Average(x => x[0].Value), trained.Average(x => x[^1].Value), trained.Average(x => x.Max(p => p.Value)))).ToList();

    public static string Csv(IEnumerable<TokenCosineRow> rows)
    {
        var sb = new StringBuilder("group,depth,runs,input_at_init,output_at_init,largest_at_init,input_trained,output_trained,largest_trained\n");
        foreach (var r in rows)
            sb.AppendLine(string.Join(',', Quote(r.Group), r.Depth, r.Runs, F(r.InputAtInit), F(r.OutputAtInit), F(r.LargestAtInit),
                F(r.InputTrained), F(r.OutputTrained), F(r.LargestTrained)));
        return sb.ToString();
    }

    static string Quote(string s) => s.IndexOfAny([',', '"']) >= 0 ? $"\"{s.Replace("\"", "\"\"")}\"" : s;

    static string F(double x) => x.ToString("R", CultureInfo.InvariantCulture);
}
