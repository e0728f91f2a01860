using ResidualLab.Connections;
using ResidualLab.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace ResidualLab.Tests.Connections;

/// <summary>
/// Backpropagation through the float64 GPT against central finite differences, for the schemes that change more of
/// the model than the connection (<see cref="ModelNeeds"/>): separate attention inputs, unit-norm weights with their
/// query/key, MLP and logit scales.
/// </summary>
[Collection(ConnectionsCollection.Name)]
public class ModelNeedsGradientTests
{
    static readonly GptConfig Tiny = new(VocabSize: 13, NLayer: 4, DModel: 16, NHead: 2, BlockSize: 8);

    [Theory]
    [InlineData("mudd")]
    [InlineData("dca")]
    [InlineData("ngpt")]
    public void Gradients_through_the_gpt_match_finite_differences(string scheme)
    {
        using var model = Float64Gpt.Model(ConnectionCatalog.Create(scheme), Tiny);
        manual_seed(21);
        using (no_grad()) foreach (var p in model.parameters()) p.add_(randn_like(p) * 0.1); // off the init
        var tokens = Float64Gpt.Tokens();
        var probe = randn([2, 8, 13], dtype: ScalarType.Float64);
        Tensor Loss() => (model.call(tokens) * probe).sum();
        Loss().backward();
        var checks = model.named_parameters()
            .Where(np => np.name.Contains(".conn_") || np.name.EndsWith("attn.c_attn.weight") || np.name.EndsWith("_scale"))
            .Select(np => (np.name, (Tensor)np.parameter, np.parameter.grad!.clone())).ToList();
        Assert.Contains(checks, c => c.name.Contains("h.3.conn_attn"));
        if (scheme == "ngpt") Assert.Equal(9, checks.Count(c => c.name.EndsWith("_scale"))); // s_qk and s_u per block, s_z
        FiniteDifferences.AssertMatch(checks, Loss, samples: 4, scheme);
    }
}
