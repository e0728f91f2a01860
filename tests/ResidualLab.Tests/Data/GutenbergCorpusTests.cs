using System.Text;
using ResidualLab.Config;
using ResidualLab.Data;

namespace ResidualLab.Tests.Data;

public class GutenbergCorpusTests
{
    [Fact]
    public void The_recipe_decodes_latin1_drops_cr_and_eof_cuts_the_licence_and_joins_in_name_order()
    {
        var books = new Dictionary<string, byte[]>
        {
            ["zeta.txt"] = Encoding.Latin1.GetBytes("Last\r\nbook\x1a"),
            ["chesterton-ball.txt"] = Encoding.Latin1.GetBytes("Ball text\nmore\nEnd of Project Gutenberg's Ball\nlicence\n"),
            ["alpha.txt"] = Encoding.Latin1.GetBytes("caf\u00e9\n\n\n"),
        };
        Assert.Equal("caf\u00e9\n\nBall text\nmore\n\nLast\nbook\n\n", GutenbergCorpus.Clean(books));
    }

    [Fact]
    public void The_split_is_by_whole_book_and_covers_the_pinned_text()
    {
        var books = GutenbergCorpus.Books.Select(b => b.Book).ToList();
        Assert.Equal(11_731_409, GutenbergCorpus.Books.Sum(b => (long)b.Characters));
        Assert.Equal(books.Order(StringComparer.Ordinal), books);
        Assert.Subset(books.ToHashSet(), GutenbergCorpus.ValBooks.ToHashSet());
        Assert.Subset(books.ToHashSet(), GutenbergCorpus.TestBooks.ToHashSet());
        Assert.Empty(GutenbergCorpus.ValBooks.Intersect(GutenbergCorpus.TestBooks));
        Assert.DoesNotContain("bible-kjv", GutenbergCorpus.ValBooks.Concat(GutenbergCorpus.TestBooks));
        double Share(IEnumerable<string> set) => GutenbergCorpus.Books.Where(b => set.Contains(b.Book)).Sum(b => (double)b.Characters) / 11_731_409;
        Assert.InRange(Share(GutenbergCorpus.ValBooks), 0.07, 0.1);
        Assert.InRange(Share(GutenbergCorpus.TestBooks), 0.07, 0.1);
    }

    [Fact]
    public void Gutenberg_is_split_by_book_so_a_val_fraction_is_an_error()
    {
        var ex = Assert.Throws<ConfigException>(() => TestSupport.TinyConfig("data.corpus=gutenberg", "data.val_fraction=0.2"));
        Assert.Contains("split by whole books", ex.Message);
        var config = TestSupport.TinyConfig("data.corpus=gutenberg");
        Assert.Equal("gutenberg", config.Gpt.Data.Corpus);
        // A run's config.txt names every value, the default val_fraction too, and reads back as the same run.
        Assert.Equal(config.RunId, RunConfig.From(ConfigValues.FromCanonical(config.Canonical, "config.txt")).RunId);
        Assert.Contains("did you mean 'gutenberg'", Assert.Throws<ConfigException>(() => TestSupport.TinyConfig("data.corpus=gutenburg")).Message);
    }
}
