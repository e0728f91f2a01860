using ResidualLab.Connections;
using static TorchSharp.torch;

namespace ResidualLab.Models;

/// <summary>
/// Equal size (<c>model.match_params = SCHEME</c>): the width at which a GPT with one scheme has, within
/// <see cref="Tolerance"/>, as many parameters as the same-depth GPT with another scheme at the configured
/// width. A GPT's parameter count is a quadratic in d_model (the number of heads does not enter it), so
/// three small builds give it exactly and a fourth checks it. Among the widths within the tolerance the
/// one whose head size (d_model / n_head) is closest to the configured one wins, then the closest count.
/// </summary>
internal static class ParameterMatch
{
    public const double Tolerance = 0.02;

    /// <summary>The shape to build <paramref name="own"/> with so its parameters match <paramref name="target"/>'s at <paramref name="config"/>.</summary>
    public static GptConfig Width(GptConfig config, ConnectionScheme own, ConnectionScheme target)
    {
        long goal = Count(config with { NHead = 1 }, target);
        var ownCount = Quadratic(config, own);
        double headSize = (double)config.DModel / config.NHead;
        int low = Math.Max(1, config.DModel / 2), high = 2 * config.DModel;
        var best = Enumerable.Range(low, high - low + 1)
            .SelectMany(d => Enumerable.Range(1, d).Where(h => d % h == 0).Select(h => (D: d, H: h)))
            .Select(c => (c.D, c.H, Error: Math.Abs((double)ownCount(c.D) / goal - 1)))
            .Where(c => c.Error <= Tolerance)
            .OrderBy(c => Math.Abs(Math.Log((double)c.D / c.H / headSize)))
            .ThenBy(c => c.Error)
            .Select(c => ((int D, int H)?)(c.D, c.H))
            .FirstOrDefault()
            ?? throw new ConfigException($"model.match_params: no d_model between {low} and {high} gives '{own.Name}' within {Tolerance:P0} of the {goal:N0} parameters of '{target.Name}'");
        return config with { DModel = best.D, NHead = best.H };
    }

    /// <summary>Parameters of the GPT with <paramref name="scheme"/> at width d, from builds at three widths (checked at a fourth).</summary>
    static Func<int, long> Quadratic(GptConfig config, ConnectionScheme scheme)
    {
        int d0 = config.DModel;
        long p0 = Count(config with { DModel = d0, NHead = 1 }, scheme);
        long p1 = Count(config with { DModel = d0 + 1, NHead = 1 }, scheme);
        long p2 = Count(config with { DModel = d0 + 2, NHead = 1 }, scheme);
        long a2 = p2 - 2 * p1 + p0; // 2a
        long CountAt(int d)
        {
            long x = d - d0;
            return p0 + x * (p1 - p0) + a2 * x * (x - 1) / 2;
        }
        long check = Count(config with { DModel = d0 + 5, NHead = 1 }, scheme);
        if (CountAt(d0 + 5) != check)
            throw new InvalidOperationException($"the parameters of '{scheme.Name}' are not quadratic in d_model ({CountAt(d0 + 5)} predicted, {check} counted)");
        return CountAt;
    }

    /// <summary>Builds the model (with its own generator state saved and restored, so matching leaves training's draws unchanged) and counts.</summary>
    public static long Count(GptConfig config, ConnectionScheme scheme)
    {
        using var state = get_rng_state();
        using (var model = new Gpt(config, scheme))
        {
            long n = model.ParameterCount();
            set_rng_state(state);
            return n;
        }
    }
}
