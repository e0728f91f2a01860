using ResidualLab.Connections;
using ResidualLab.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace ResidualLab.Tests.Connections;

/// <summary>
/// Backpropagation through the float64 GPT against central finite differences, for the schemes that change more of
/// the model than the connection (<see cref="ModelNeeds"/>): separate attention inputs, unit-norm weights with their
/// query/key, MLP and logit scales, shaped attention (its gains alpha, beta, gamma, the fixed prior's bias and rescale, the
/// identity-plus-learned value), the TAT and ReLU MLPs, and the parallel block.
/// </summary>
[Collection(ConnectionsCollection.Name)]
public class ModelNeedsGradientTests
{
    static readonly GptConfig Tiny = new(VocabSize: 13, NLayer: 4, DModel: 16, NHead: 2, BlockSize: 8);

    [Theory]
    [InlineData("mudd")]
    [InlineData("dca")]
    [InlineData("ngpt")]
    [InlineData("value-skipinit")]
    [InlineData("e-spa")]
    [InlineData("u-spa")]
    [InlineData("sas")]
    [InlineData("sas-p")]
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
            .Where(np => np.name.Contains(".conn_") || np.name.EndsWith("attn.c_attn.weight") || np.name.EndsWith("_scale")
                         || np.name.Contains(".attn.attn_") || np.name.Contains(".attn.value_") || np.name.EndsWith("mlp.c_fc.weight"))
            .Select(np => (np.name, (Tensor)np.parameter, np.parameter.grad!.clone())).ToList();
        Assert.Contains(checks, c => c.name.StartsWith("h.3.", StringComparison.Ordinal)); // the last block's parameters are among those checked
        if (scheme == "ngpt") Assert.Equal(9, checks.Count(c => c.name.EndsWith("_scale"))); // s_qk and s_u per block, s_z
        if (scheme.StartsWith("sas", StringComparison.Ordinal)) // alpha, beta, gamma per block, block 0's a_V and b_V
            Assert.Equal(3 * Tiny.NLayer + 2, checks.Count(c => c.name.Contains(".attn.attn_") || c.name.Contains(".attn.value_")));
        FiniteDifferences.AssertMatch(checks, Loss, samples: 4, scheme);
    }
}
