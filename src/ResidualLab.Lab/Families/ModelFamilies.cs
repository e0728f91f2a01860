namespace ResidualLab.Families;

/// <summary>The registry of model families: one line per family.</summary>
internal static class ModelFamilies
{
    /// <summary>Every family, in the order <c>model.name</c>'s description lists them.</summary>
    public static IReadOnlyList<ModelFamily> All { get; } =
    [
        GptFamily.Instance,
        CifarResNetFamily.Instance,
        DeepMlpFamily.Instance,
        RepVggFamily.Instance,
    ];

    /// <summary>Every value <c>model.name</c> takes.</summary>
    public static IEnumerable<string> Names => All.SelectMany(f => f.Names);

    /// <summary>The family that answers to <paramref name="name"/>; null when none does.</summary>
    public static ModelFamily? Find(string name) => All.FirstOrDefault(f => f.Names.Contains(name));
}
