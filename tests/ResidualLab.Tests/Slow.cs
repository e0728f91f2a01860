namespace ResidualLab.Tests;

/// <summary>
/// The trait of the test classes that train, build, pack or start processes for seconds to minutes. The inner loop
/// runs the rest, in under two minutes on 2 cores: <c>dotnet test ResidualLab.slnx --filter "Category!=Slow"</c>; CI
/// runs everything.
/// </summary>
static class Slow
{
    public const string Category = "Category";
    public const string Value = "Slow";
}
