using ResidualLab.Connections;
using ResidualLab.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace ResidualLab.Tests.Connections;

/// <summary>Tiny GPTs in float64 and eval mode, for checking what a scheme computes to rounding error.</summary>
static class Float64Gpt
{
    public static Gpt Model(ConnectionScheme scheme, GptConfig config)
    {
        manual_seed(11);
        var model = new Gpt(config, scheme);
        model.to(ScalarType.Float64);
        model.eval();
        return model;
    }

    /// <summary>Copies every parameter <paramref name="target"/> shares by name with <paramref name="source"/>; returns how many.</summary>
    public static int CopyShared(Gpt source, Gpt target)
    {
        var from = source.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        using var _ = no_grad();
        int copied = 0;
        foreach (var (name, p) in target.named_parameters())
            if (from.TryGetValue(name, out var src)) { p.copy_(src); copied++; }
        return copied;
    }

    /// <summary>Two sequences of eight tokens from a vocabulary of 13.</summary>
    public static Tensor Tokens() => tensor(new long[] { 1, 5, 2, 7, 3, 3, 9, 12, 0, 4, 8, 6, 11, 2, 5, 1 }, [2, 8]);

    public static Tensor Hidden(Gpt model)
    {
        using var _ = no_grad();
        return model.Forward(Tokens());
    }

    public static double MaxDiff(Tensor a, Tensor b) => (a - b).abs().max().item<double>();
}
