using TorchSharp.Modules;
using static TorchSharp.torch;

namespace ResidualLab.Connections;

// Axes: b batch, t position, d width (the last axis).

/// <summary>
/// Admin (adaptive model initialisation): post-norm with a learned per-channel shortcut scale,
/// x_i = LN(omega_i * x_{i-1} + F(x_{i-1})), omega_i set by profiling to sqrt(Var[x_0] + sum_{j&lt;i} Var[F_j]),
/// the accumulated variance of the embedding and of every earlier branch output, so that no sublayer's
/// output dominates its shortcut at the start and the model keeps post-norm's function class.
/// Liu et al. 2020, "Understanding the Difficulty of Training Transformers" (arXiv 2004.08249), eq. 5 and
/// sec. 4.3. Profiling: the paper runs one forward pass before training; here the first forward pass the
/// model runs (the first training batch) is that pass: each sublayer sets its omega from the variances
/// the earlier sublayers of the same pass produced, before using it, and marks itself profiled (a buffer
/// saved with the model, so a resumed run does not profile again). Var is over every element of the batch.
/// Chosen: the embedding's variance counts as the first term (else omega_1 = 0 would cut the first shortcut).
/// On the CIFAR ResNet: omega profiled per stage on the first batch.
/// </summary>
public sealed record AdminScheme : ConnectionScheme
{
    /// <inheritdoc/>
    public override string Name => "admin";
    /// <inheritdoc/>
    public override Connection Build(ConnectionSite site) => new AdminResidual(site);
    /// <summary>omega * x + y, then LN: 2 d + 7 d (the one profiling pass left out).</summary>
    internal override double ForwardFlops(ConnectionSite site) => 2.0 * site.Width + ConnectionFlops.LayerNorm(site.Width);
    /// <inheritdoc/>
    public override IReadOnlyDictionary<string, object> Options => new Dictionary<string, object>();
}

internal sealed class AdminResidual : Connection
{
    /// <summary>The key under which one forward pass accumulates Var[x_0] + sum Var[F_j] in <see cref="LayerContext.PassState"/>.</summary>
    const string VarianceKey = "admin.accumulated_variance";

    readonly nn.Module<Tensor, Tensor> norm;
    readonly Parameter omega;   // [d]
    readonly Tensor profiled;   // 0 until the profiling pass set omega, then 1
    bool isProfiled;            // profiled, once read as 1 (no device sync per step after that)

    public AdminResidual(ConnectionSite site) : base(nameof(AdminResidual))
    {
        norm = site.MakeNorm();
        omega = nn.Parameter(ones(site.Width));
        profiled = zeros(1);
        RegisterComponents();
    }

    public bool IsProfiled => isProfiled || (isProfiled = profiled.to(ScalarType.Float64).item<double>() != 0);

    public Parameter Omega => omega;

    public override Branch Prepare(Tensor stream, LayerContext ctx)
    {
        bool profiling = !IsProfiled || ctx.PassState.ContainsKey(VarianceKey);
        if (profiling)
        {
            using var _ = no_grad();
            if (!ctx.PassState.TryGetValue(VarianceKey, out var accumulated))
                accumulated = ctx.PassState[VarianceKey] = ctx.History[0].to(ScalarType.Float64).var();
            if (!IsProfiled)
            {
                omega.fill_(accumulated.sqrt().item<double>());
                profiled.fill_(1);
            }
        }
        return new(stream, stream);
    }

    public override Tensor Combine(Tensor output, Branch branch, LayerContext ctx)
    {
        if (ctx.PassState.TryGetValue(VarianceKey, out var accumulated))
            using (no_grad()) ctx.PassState[VarianceKey] = accumulated + output.to(ScalarType.Float64).var();
        return norm.call(omega * branch.Stream + output);
    }
}
