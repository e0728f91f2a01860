using System.Collections.Concurrent;
using System.Runtime.ExceptionServices;

namespace ResidualLab.Data;

/// <summary>
/// Makes batches on a background thread while the training thread works on the previous one. One
/// finished batch waits in the queue and at most one more is being made, so the source never runs more
/// than two batches ahead; batches arrive in the order the source makes them. An exception in the
/// source is rethrown by <see cref="Take"/> (and by every call after it). Dispose stops the thread and
/// waits for it.
/// The source runs on another thread: it should make managed arrays, not tensors, since TorchSharp's
/// dispose scopes belong to the thread that opens them; the training thread turns a batch into tensors.
/// </summary>
internal sealed class BatchPrefetcher<T> : IDisposable
{
    readonly BlockingCollection<T> _ready = new(boundedCapacity: 1);
    readonly CancellationTokenSource _stop = new();
    readonly Thread _thread;
    ExceptionDispatchInfo? _failure; // set by the producer before it closes the queue
    bool _disposed;

    public BatchPrefetcher(Func<T> source)
    {
        _thread = new Thread(() => Produce(source)) { IsBackground = true, Name = "batch prefetch" };
        _thread.Start();
    }

    void Produce(Func<T> source)
    {
        try
        {
            while (true) _ready.Add(source(), _stop.Token);
        }
        catch (OperationCanceledException) when (_stop.IsCancellationRequested) { }
        catch (Exception ex) { _failure = ExceptionDispatchInfo.Capture(ex); }
        finally { _ready.CompleteAdding(); }
    }

    /// <summary>The next batch, waiting for it if it is not ready yet.</summary>
    public T Take()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (!_ready.TryTake(out var batch, Timeout.Infinite)) _failure!.Throw();
        return batch;
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _stop.Cancel();
        _thread.Join();
        _ready.Dispose();
        _stop.Dispose();
    }
}
