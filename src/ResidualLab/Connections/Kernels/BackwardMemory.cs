using static TorchSharp.torch;

namespace ResidualLab.Connections.Kernels;

/// <summary>
/// Keeps the kernels' backward passes from holding memory until the training step ends. TorchSharp wraps every tensor a
/// custom function's backward is handed (the gradients of its outputs, its saved tensors) and every tensor it makes in a
/// .NET object registered in the dispose scope open on the thread, in training one around the whole step: every stream
/// gradient [t, s, d] of every sublayer would stay allocated until the step ends, long after libtorch is done with it
/// (the stream schemes' step memory grew by three such tensors per sublayer). So a backward runs inside its own scope
/// and disposes the gradients it was handed; the gradients it returns must outlive the return (libtorch takes its own
/// reference from each returned handle), so they move to the outer scope and their wrappers are disposed when the next
/// kernel backward on the same thread begins. That also lets libtorch's autograd add the two gradients of a stream
/// (from the depth step and from the next width step) in place.
/// </summary>
internal static class BackwardMemory
{
    [ThreadStatic] static List<Tensor>? returned;

    /// <summary>Runs <paramref name="backward"/> as described above and returns its gradients (nulls for inputs without one).</summary>
    public static List<Tensor> Run(List<Tensor> gradOutputs, Func<List<Tensor>> backward)
    {
        if (returned is not null)
            foreach (var t in returned) t.Dispose();
        List<Tensor> results;
        using (var scope = NewDisposeScope())
        {
            results = backward();
            foreach (var t in results)
                if (t is not null) scope.MoveToOuter(t);
        }
        foreach (var g in gradOutputs) g?.Dispose();
        returned = results.Where(t => t is not null).ToList();
        return results;
    }
}
