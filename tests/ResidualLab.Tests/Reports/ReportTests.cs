using System.Buffers.Binary;
using System.Text.RegularExpressions;
using ResidualLab.Processes;
using ResidualLab.Reports;
using ResidualLab.Tests.Experiments;
using SkiaSharp;

namespace ResidualLab.Tests.Reports;

[Trait(Slow.Category, Slow.Value)]
public class ReportTests
{
    static readonly Lazy<(string Folder, ReportOutput Output)> Report = new(() =>
    {
        string folder = TinySweep.CopyOfSharedStudy(); // the report writes its files into the folder it reads
        return (folder, ReportWriter.Write(folder, "pre-norm"));
    });

    /// <summary>A [tune] sweep of two schemes at one depth: the report whose verdicts once filled a 60-pixel column.</summary>
    static readonly Lazy<ReportOutput> TunedOneDepth = new(() =>
    {
        string dir = TestSupport.TempDir();
        string config = TinySweep.WriteConfig(dir, """
            "connection.name" = ["pre-norm", "none"]
            "train.seed" = [1, 2]

            [tune]
            "train.lr" = [1e-3, 3e-3]
            """, maxIters: 10);
        string results = Path.Combine(dir, "results");
        TinySweep.Run(config, results);
        return ReportWriter.Write(results, "pre-norm");
    });

    static IReadOnlyList<byte[]> EmbeddedPngs(string html) =>
        Regex.Matches(html, "<img [^>]*src=\"data:image/png;base64,([A-Za-z0-9+/=]+)\"").Select(m => Convert.FromBase64String(m.Groups[1].Value)).ToList();

    [Fact]
    public void The_report_is_one_self_contained_file_with_every_figure_and_table()
    {
        var (folder, output) = Report.Value;
        string html = File.ReadAllText(output.HtmlPath);
        // loss curves at depth 1 and 2, loss vs depth, gradient norm by layer at 1 and 2, step time, memory, parameters;
        // per depth the stream probes' RMS, resid_pre gradient and update-ratio curves, one RMS heatmap per scheme and the
        // token cosine along depth at init and trained
        Assert.Equal(8 + 2 * (3 + 2 + 2), output.Figures);
        var pngs = EmbeddedPngs(html);
        Assert.Equal(output.Figures, pngs.Count);
        foreach (var png in pngs)
        {
            Assert.Equal(0x89504E47u, BinaryPrimitives.ReadUInt32BigEndian(png)); // PNG signature
            Assert.Equal((ReportPlots.Width, ReportPlots.Height), (BinaryPrimitives.ReadInt32BigEndian(png.AsSpan(16)), BinaryPrimitives.ReadInt32BigEndian(png.AsSpan(20))));
            Assert.True(DistinctColours(SKBitmap.Decode(png)) > 20, "a figure is blank");
        }
        Assert.DoesNotMatch("(src|href)=\"(https?:)?//", html); // nothing fetched from a network
        Assert.Contains("Necessity scorecard", html);
        Assert.Contains("none", html);
        Assert.Contains("Stream RMS along depth, 2 layers", html);
        Assert.Contains("Stream RMS by block and step, none, 2 layers", html);
        Assert.Contains("Stream health: rank collapse", html);
        Assert.Equal(1 + 2 * 2, File.ReadAllLines(Path.Combine(folder, "stream_health.csv")).Length); // a row per scheme and depth
        foreach (var csv in new[] { "scorecard.csv", "final_loss.csv", "runs.csv" })
            Assert.True(File.ReadAllLines(Path.Combine(folder, csv)).Length >= 3, csv);
        Assert.Equal(9, File.ReadAllLines(Path.Combine(folder, "runs.csv")).Length);
        Assert.Equal(["pre-norm", "none"], output.Scorecard.Select(r => r.Group));
        Assert.NotNull(output.Scorecard[1].Difference);
    }

    [Fact]
    public void Headless_chromium_renders_every_figure()
    {
        TestSupport.RequirePackages("chromium", "fonts-dejavu-core");
        var (_, output) = Report.Value;
        string artifacts = Path.Combine(RepositoryRoot(), "TestResults");
        Directory.CreateDirectory(artifacts);
        string screenshot = Path.Combine(artifacts, "report-screenshot.png");
        File.Delete(screenshot);
        string url = new Uri(output.HtmlPath).AbsoluteUri;

        string dom = Chromium(["--dump-dom", url]);
        var images = Regex.Matches(dom, "<img [^>]*src=\"data:image/png;base64,").Count;
        Assert.Equal(output.Figures, images);

        Chromium([$"--screenshot={screenshot}", "--window-size=1280,2400", "--hide-scrollbars", url]);
        using var shot = SKBitmap.Decode(screenshot);
        Assert.Equal((1280, 2400), (shot.Width, shot.Height));
        Assert.True(DistinctColours(shot) > 50, "the rendered page is blank");
        double inked = Enumerable.Range(0, shot.Height / 4).SelectMany(y => Enumerable.Range(0, shot.Width / 4).Select(x => shot.GetPixel(4 * x, 4 * y)))
            .Count(c => c.Red < 200 || c.Green < 200 || c.Blue < 200) / (double)(shot.Width / 4 * (shot.Height / 4));
        Assert.True(inked > 0.02, $"only {inked:P1} of the page has ink");
    }

    [Fact]
    public void Opened_at_1300_pixels_no_table_is_wider_than_the_page_and_each_verdict_has_a_headline()
    {
        TestSupport.RequirePackages("chromium", "fonts-dejavu-core");
        var output = TunedOneDepth.Value;
        string html = File.ReadAllText(output.HtmlPath);
        Assert.DoesNotContain("Final test loss vs depth", html);                 // one depth: no chart against depth
        foreach (var row in output.Scorecard)
        {
            Assert.Contains($">{row.Headline}</span></td></tr>", html);          // the table holds the headline...
            Assert.True(row.Headline.Length <= 40, row.Headline);
            Assert.Contains(System.Net.WebUtility.HtmlEncode(row.Verdict[(row.Headline.Length + 2)..]), html); // ...the sentence follows it
        }

        // The test's own copy measures the laid-out page (the report itself has no scripts).
        string probe = Path.Combine(Path.GetDirectoryName(output.HtmlPath)!, "probe.html");
        File.WriteAllText(probe, html.Replace("</body>", """
            <script>
            const page = document.documentElement.clientWidth;
            const wide = [...document.querySelectorAll('table')].map(t => t.getBoundingClientRect()).filter(r => r.right > page + 0.5).map(r => Math.round(r.width));
            document.body.setAttribute('data-page', page);
            document.body.setAttribute('data-wide', wide.join(' '));
            </script></body>
            """));
        string dom = Chromium(["--dump-dom", "--window-size=1300,2000", new Uri(probe).AbsoluteUri]);
        var body = Regex.Match(dom, "<body data-page=\"([0-9]+)\" data-wide=\"([0-9 ]*)\"");
        Assert.True(body.Success, "the page was not measured");
        Assert.True(int.Parse(body.Groups[1].Value) >= 1200, $"page width {body.Groups[1].Value}");
        Assert.True(body.Groups[2].Value.Length == 0, $"tables wider than the {body.Groups[1].Value}-pixel page: {body.Groups[2].Value} pixels");
    }

    static int DistinctColours(SKBitmap bitmap)
    {
        var colours = new HashSet<SKColor>();
        for (int y = 0; y < bitmap.Height; y += 3)
            for (int x = 0; x < bitmap.Width; x += 3)
                colours.Add(bitmap.GetPixel(x, y));
        return colours.Count;
    }

    static string Chromium(IEnumerable<string> args)
    {
        string profile = TestSupport.TempDir();
        var chromium = ChildProcess.Run("chromium", new[] { "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                     "--disable-component-update", "--disable-sync", "--no-first-run", $"--user-data-dir={profile}" }.Concat(args),
            TimeSpan.FromSeconds(60));
        if (chromium.TimedOut) throw new TimeoutException("chromium ran over 60 s");
        Assert.True(chromium.ExitCode == 0, $"chromium exited {chromium.ExitCode}: {chromium.StdErr}");
        return chromium.StdOut;
    }

    static string RepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "ResidualLab.slnx"))) return dir.FullName;
        return Directory.GetCurrentDirectory();
    }
}
