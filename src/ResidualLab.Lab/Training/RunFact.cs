namespace ResidualLab.Training;

/// <summary>
/// A fact about a run's model as its task built it, stated once per run and kept in the store: what reports need
/// and the config alone does not say (the vocabulary and a matched width decide the FLOPs).
/// </summary>
internal sealed record RunFact(string Name, double Value)
{
    /// <summary>Training FLOPs of one optimiser step (forward and backward, 3x the forward).</summary>
    public const string FlopsPerStep = "train_flops_per_step";

    /// <summary>The d_model a run matched to another scheme's size was built at.</summary>
    public const string MatchedWidth = "d_model";

    /// <summary>The n_head a run matched to another scheme's size was built with.</summary>
    public const string MatchedHeads = "n_head";
}
