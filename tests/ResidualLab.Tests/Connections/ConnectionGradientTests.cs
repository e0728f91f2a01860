using TorchSharp;
using static TorchSharp.torch;

namespace ResidualLab.Tests.Connections;

/// <summary>Backpropagation through every scheme against central finite differences, in float64.</summary>
[Collection(ConnectionsCollection.Name)]
public class ConnectionGradientTests
{
    [Theory]
    [MemberData(nameof(Schemes.Labels), MemberType = typeof(Schemes))]
    public void Gradients_match_finite_differences(string scheme)
    {
        manual_seed(21);
        using var stack = new TinyStack(Schemes.Get(scheme), width: 4, depth: 3);
        stack.to(ScalarType.Float64);
        using (no_grad())
            foreach (var p in stack.parameters()) p.add_(randn_like(p) * 0.1); // off the init, where gates sit at 0
        var x = randn([2, 3, 4], dtype: ScalarType.Float64).requires_grad_();
        var probe = randn([2, 3, 4], dtype: ScalarType.Float64);
        Tensor Loss() => (stack.call(x) * probe).sum();

        Loss().backward();
        var checks = new List<(string Name, Tensor Value, Tensor Grad)> { ("input", x, x.grad!.clone()) };
        checks.AddRange(stack.named_parameters().Select(np => (np.name, (Tensor)np.parameter, np.parameter.grad!.clone())));

        FiniteDifferences.AssertMatch(checks, Loss, samples: 12, scheme);
    }
}
