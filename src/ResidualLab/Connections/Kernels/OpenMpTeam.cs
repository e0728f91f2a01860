using System.Runtime.ExceptionServices;
using System.Runtime.InteropServices;
using ResidualLab.Native;

namespace ResidualLab.Connections.Kernels;

/// <summary>
/// Runs a kernel's chunks on libtorch's own OpenMP threads (GNU OpenMP's <c>GOMP_parallel</c>, reached through the
/// libtorch the process loaded) instead of .NET's thread pool. libtorch's OpenMP workers spin for a while after each of
/// its operations; a .NET worker started right after one competes with that spinning thread for the same core, so a
/// kernel split over .NET threads waited for its second half (the "OpenMP threads waiting" in the profiles). On the
/// OpenMP team the spinning worker takes the chunk at once.
/// One thread drives the team: the first that runs a kernel (in training, the thread that runs libtorch's operations,
/// whose OpenMP team this then is). Every thread that calls <c>GOMP_parallel</c> gets an OpenMP team of its own, which
/// lives as long as the thread and runs managed code; a test process whose many threads each did so, on a loaded CPU,
/// once exited without a message. Kernels called from any other thread run on .NET's thread pool, as do all kernels
/// where the symbols are not there (another OpenMP runtime, a libtorch built with another thread pool) or with
/// <c>RESLAB_OPENMP_KERNELS=0</c>.
/// </summary>
internal static unsafe class OpenMpTeam
{
    static readonly delegate* unmanaged<delegate* unmanaged<nint, void>, nint, uint, uint, void> parallel;
    static readonly delegate* unmanaged<int> threadNumber;
    static readonly delegate* unmanaged<int> teamSize;

    static OpenMpTeam()
    {
        if (Environment.GetEnvironmentVariable("RESLAB_OPENMP_KERNELS") == "0") return;
        if (TorchRuntime.FindNativeLibrary() is not { } path || !NativeLibrary.TryLoad(path, out var handle)) return;
        // dlsym on a library's handle searches the library and everything it loaded (libtorch, its OpenMP runtime).
        if (NativeLibrary.TryGetExport(handle, "GOMP_parallel", out var p) &&
            NativeLibrary.TryGetExport(handle, "omp_get_thread_num", out var n) &&
            NativeLibrary.TryGetExport(handle, "omp_get_num_threads", out var s))
        {
            parallel = (delegate* unmanaged<delegate* unmanaged<nint, void>, nint, uint, uint, void>)p;
            threadNumber = (delegate* unmanaged<int>)n;
            teamSize = (delegate* unmanaged<int>)s;
        }
    }

    /// <summary>Whether libtorch's OpenMP team can run kernels.</summary>
    public static bool Available => parallel != null;

    /// <summary>The managed id of the one thread that drives the team; 0 until a kernel runs.</summary>
    static int driver;

    /// <summary>
    /// Runs <paramref name="body"/>(chunk) for chunk = 0 .. chunks - 1 on a team of that many OpenMP threads (the caller
    /// one of them) when the team is available to this thread; false, having run nothing, when it is not.
    /// </summary>
    public static bool TryRun(int chunks, Action<int> body)
    {
        if (!Available) return false;
        int me = Environment.CurrentManagedThreadId;
        int owner = Interlocked.CompareExchange(ref driver, me, 0);
        if (owner != 0 && owner != me) return false;
        Run(chunks, body);
        return true;
    }

    sealed class Work(int chunks, Action<int> body)
    {
        public readonly int Chunks = chunks;
        public readonly Action<int> Body = body;
        public Exception? Error;
    }

    static void Run(int chunks, Action<int> body)
    {
        var work = new Work(chunks, body);
        var handle = GCHandle.Alloc(work);
        try { parallel(&Team, GCHandle.ToIntPtr(handle), (uint)chunks, 0); }
        finally { handle.Free(); }
        if (work.Error is { } error) ExceptionDispatchInfo.Throw(error);
    }

    /// <summary>Each thread of the team runs the chunks numbered like it (the team may be smaller than asked for).</summary>
    [UnmanagedCallersOnly]
    static void Team(nint state)
    {
        var work = (Work)GCHandle.FromIntPtr(state).Target!;
        try
        {
            int size = Math.Max(1, teamSize());
            for (int chunk = threadNumber(); chunk < work.Chunks; chunk += size) work.Body(chunk);
        }
        catch (Exception e)
        {
            // An exception must not unwind into OpenMP's native frames: the caller rethrows it.
            Interlocked.CompareExchange(ref work.Error, e, null);
        }
    }
}
