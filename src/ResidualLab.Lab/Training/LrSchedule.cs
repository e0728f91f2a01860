namespace ResidualLab.Training;

/// <summary>Linear warmup to <c>Lr</c>, then cosine decay to <c>MinLr</c> at <c>DecayIters</c> (nanoGPT).</summary>
internal sealed record LrSchedule(double Lr, double MinLr, int WarmupIters, int DecayIters) : ILrSchedule
{
    public double At(int step)
    {
        if (step < WarmupIters) return Lr * (step + 1) / (WarmupIters + 1);
        if (step >= DecayIters) return MinLr;
        double ratio = (double)(step - WarmupIters) / Math.Max(1, DecayIters - WarmupIters);
        double coeff = 0.5 * (1.0 + Math.Cos(Math.PI * ratio));
        return MinLr + coeff * (Lr - MinLr);
    }
}

/// <summary>The learning rate at each step (<see cref="LrSchedule"/> for the GPT, <see cref="StepSchedule"/> for the classifiers).</summary>
internal interface ILrSchedule
{
    double At(int step);
}
