namespace ResidualLab.Training;

/// <summary>
/// The step schedule of He et al. 2016, sec. 4.2: the learning rate is divided by 10 at 32k and 48k
/// of 64k iterations, i.e. at 50% and 75% of training; here at those fractions of <c>MaxIters</c>,
/// after an optional linear warmup.
/// </summary>
internal sealed record StepSchedule(double Lr, int WarmupIters, int MaxIters) : ILrSchedule
{
    public IReadOnlyList<int> Milestones => [MaxIters / 2, MaxIters * 3 / 4];

    public double At(int step)
    {
        if (step < WarmupIters) return Lr * (step + 1) / (WarmupIters + 1);
        return Lr * Math.Pow(0.1, Milestones.Count(m => step >= m));
    }
}
