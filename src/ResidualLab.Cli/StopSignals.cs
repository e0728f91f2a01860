using System.Runtime.InteropServices;

namespace ResidualLab.Cli;

/// <summary>
/// Ctrl-C (SIGINT) and SIGTERM (kill, scancel, a job scheduler's stop) as a cancellation: the command stops between
/// steps, records what is unfinished as interrupted and exits, instead of dying with its child runs left behind.
/// </summary>
internal sealed class StopSignals : IDisposable
{
    readonly CancellationTokenSource cancel = new();
    readonly PosixSignalRegistration sigint, sigterm;

    public StopSignals()
    {
        sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, Stop);
        sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, Stop);
    }

    /// <summary>Cancelled by the first SIGINT or SIGTERM.</summary>
    public CancellationToken Token => cancel.Token;

    public bool Requested => cancel.IsCancellationRequested;

    void Stop(PosixSignalContext context)
    {
        context.Cancel = true;
        cancel.Cancel();
    }

    public void Dispose()
    {
        sigint.Dispose();
        sigterm.Dispose();
        cancel.Dispose();
    }
}
