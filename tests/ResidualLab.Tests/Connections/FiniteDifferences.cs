using static TorchSharp.torch;

namespace ResidualLab.Tests.Connections;

/// <summary>Backpropagated gradients against central finite differences (h = 1e-6), in float64.</summary>
static class FiniteDifferences
{
    /// <summary>
    /// For each (name, value, gradient) in turn, <paramref name="samples"/> entries drawn by one seeded generator:
    /// (loss(v + h) - loss(v - h)) / 2h must equal the recorded gradient to 1e-6 + 1e-5 |numeric|.
    /// </summary>
    public static void AssertMatch(IEnumerable<(string Name, Tensor Value, Tensor Grad)> checks, Func<Tensor> loss, int samples, string scheme)
    {
        var rng = new Random(5);
        const double h = 1e-6;
        foreach (var (name, value, grad) in checks)
        {
            var flat = value.detach().view(-1);
            var g = grad.view(-1);
            foreach (int i in Enumerable.Range(0, (int)flat.numel()).OrderBy(_ => rng.Next()).Take(samples))
            {
                double original = flat[i].item<double>(), plus, minus;
                using (no_grad())
                {
                    flat[i].fill_(original + h);
                    plus = loss().item<double>();
                    flat[i].fill_(original - h);
                    minus = loss().item<double>();
                    flat[i].fill_(original);
                }
                double numeric = (plus - minus) / (2 * h), analytic = g[i].item<double>();
                Assert.True(Math.Abs(numeric - analytic) <= 1e-6 + 1e-5 * Math.Abs(numeric),
                    $"{scheme}: d loss / d {name}[{i}]: backprop {analytic:G10}, finite differences {numeric:G10}");
            }
        }
    }
}
