using ResidualLab.Config;
using ResidualLab.Experiments;

namespace ResidualLab.Tests.Experiments;

public class DegradationTests
{
    static DegradationRow Row(bool residual, int depth, double trainError, double ratio) =>
        new(new DegradationArm("cnn", residual), depth, 1, new([0.5]), new([trainError]), new([trainError + 0.02]),
            new([trainError]), new([ratio]), new([ratio]), new([ratio]));

    [Fact]
    public void Verdicts_say_with_numbers_whether_degradation_appears()
    {
        var rows = new[]
        {
            Row(false, 20, 0.10, 0.5), Row(false, 56, 0.15, 0.02),
            Row(true, 20, 0.09, 0.3), Row(true, 56, 0.07, 0.3),
        };
        var lines = Degradation.Verdicts(rows);
        Assert.Contains("plain-56 train error 15.0% vs plain-20 10.0%", lines[0]);
        Assert.Contains("Degradation reproduced", lines[0]);
        Assert.Contains("VANISH", lines[1]);

        var flat = Degradation.Verdicts([Row(false, 20, 0.10, 0.5), Row(false, 56, 0.08, 0.4), Row(true, 20, 0.09, 0.3), Row(true, 56, 0.07, 0.3)]);
        Assert.Contains("does NOT train worse", flat[0]);
        Assert.Contains("NOT reproduced", flat[0]);
        Assert.Contains("no vanishing (criterion", flat[1]);

        var growing = Degradation.Verdicts([Row(false, 20, 0.10, 2), Row(false, 56, 0.15, 300)]);
        Assert.Contains("plain-56 300 vs plain-20 2 (150x)", growing[1]);
        Assert.Contains("GROW with depth", growing[1]);
    }

    [Fact]
    public void The_grid_pairs_each_plain_net_with_its_residual_twin()
    {
        var preset = new ConfigValues();
        var grid = Degradation.Grid(preset, new DegradationPlan(false, 32), [20, 56], [4], [1, 2]);
        Assert.Equal(12, grid.Count);
        var plain56 = grid.First(g => g.Arm.Kind == "cnn" && !g.Arm.Residual && g.Depth == 56).Config;
        Assert.Equal("plain", plain56.Vision.Model.Family);
        Assert.Equal("none", plain56.Connection.Name);
        Assert.Equal(false, plain56.Connection.Options["norm"]);
        var mlp = grid.First(g => g.Arm.Kind == "mlp" && g.Arm.Residual).Config;
        Assert.Equal("res-mlp", grid.First(g => g.Arm.Kind == "mlp" && g.Arm.Residual).Arm.Name);
        Assert.Equal(("mlp", "residual", 32), (mlp.Vision.Model.Family, mlp.Connection.Name, mlp.Vision.Model.Width));
    }
}
