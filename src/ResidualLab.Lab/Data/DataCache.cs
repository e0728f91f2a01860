using ResidualLab.Config;

namespace ResidualLab.Data;

/// <summary>The corpora and image sets runs in one process train on, each loaded once.</summary>
internal sealed class DataCache
{
    readonly Dictionary<(DataSettings, int), TokenCorpus> _corpora = [];
    readonly Dictionary<string, ImageSet> _images = [];

    /// <summary>The corpus of <paramref name="data"/> (<see cref="CorpusLoader"/>), split for <paramref name="blockSize"/>.</summary>
    public TokenCorpus Corpus(DataSettings data, int blockSize)
    {
        lock (_corpora)
        {
            if (!_corpora.TryGetValue((data, blockSize), out var corpus))
                _corpora[(data, blockSize)] = corpus = CorpusLoader.Load(data, blockSize);
            return corpus;
        }
    }

    /// <summary>The image set called <paramref name="name"/> (<see cref="ImageSets.Load"/>).</summary>
    public ImageSet Images(string name)
    {
        lock (_images)
        {
            if (!_images.TryGetValue(name, out var set)) _images[name] = set = ImageSets.Load(name);
            return set;
        }
    }

    /// <summary>A cache that gives <paramref name="images"/> for the image set called <paramref name="name"/>.</summary>
    public static DataCache With(string name, ImageSet images)
    {
        var cache = new DataCache();
        cache._images[name] = images;
        return cache;
    }
}
