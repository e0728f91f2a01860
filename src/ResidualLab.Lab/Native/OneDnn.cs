using System.Runtime.InteropServices;

namespace ResidualLab.Native;

/// <summary>
/// libtorch's switch for its oneDNN (mkldnn) CPU kernels, which TorchSharp does not expose:
/// <c>at::globalContext().setUserEnabledMkldnn(bool)</c>, called through the C++ symbols that
/// libtorch_cpu exports (Itanium-mangled names, unchanged across libtorch 2.x). Off, convolutions run
/// libtorch's own kernels (im2col and a matrix multiply) instead of oneDNN's, whose choice of kernel and
/// of padded, blocked channel layouts depends on the CPU's vector width and the thread count.
/// </summary>
public static unsafe class OneDnn
{
    const string Library = "libtorch_cpu.so";

    static delegate* unmanaged<IntPtr> _globalContext;
    static delegate* unmanaged<IntPtr, byte> _get;
    static delegate* unmanaged<IntPtr, byte, void> _set;

    /// <summary>Whether libtorch may use oneDNN kernels (its default: true); process-wide.</summary>
    public static bool Enabled
    {
        get { Bind(); return _get(_globalContext()) != 0; }
        set { Bind(); _set(_globalContext(), value ? (byte)1 : (byte)0); }
    }

    static void Bind()
    {
        if (_set != null) return;
        LabRuntime.EnsureLoaded();
        if (!NativeLibrary.TryLoad(Library, typeof(OneDnn).Assembly, null, out var handle))
            throw new NativeLoadException($"{Library} could not be loaded to switch oneDNN; leave train.onednn at its default");
        IntPtr Export(string name) => NativeLibrary.TryGetExport(handle, name, out var address) ? address
            : throw new NativeLoadException($"{Library} does not export {name} (a changed libtorch?); leave train.onednn at its default");
        _globalContext = (delegate* unmanaged<IntPtr>)Export("_ZN2at13globalContextEv");
        _get = (delegate* unmanaged<IntPtr, byte>)Export("_ZNK2at7Context17userEnabledMkldnnEv");
        _set = (delegate* unmanaged<IntPtr, byte, void>)Export("_ZN2at7Context20setUserEnabledMkldnnEb");
    }
}
