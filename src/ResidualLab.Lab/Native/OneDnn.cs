using System.Runtime.InteropServices;

namespace ResidualLab.Native;

/// <summary>
/// libtorch's switch for its oneDNN (mkldnn) CPU kernels, which TorchSharp does not expose:
/// <c>at::globalContext().setUserEnabledMkldnn(bool)</c>, called through the C++ symbols that
/// libtorch_cpu exports (Itanium-mangled names, unchanged across libtorch 2.x). Off, convolutions run
/// libtorch's own kernels (im2col and a matrix multiply, or NNPACK where it initialises) instead of
/// oneDNN's, whose choice of kernel and of padded, blocked channel layouts depends on the CPU's vector
/// width and the thread count.
/// </summary>
public static unsafe class OneDnn
{
    /// <summary>Whether libtorch may use oneDNN kernels (its default: true); process-wide.</summary>
    public static bool Enabled
    {
        get { LibTorchContext.Bind(); return LibTorchContext.GetMkldnn(LibTorchContext.Global()) != 0; }
        set { LibTorchContext.Bind(); LibTorchContext.SetMkldnn(LibTorchContext.Global(), value ? (byte)1 : (byte)0); }
    }
}

/// <summary>
/// libtorch's switch for NNPACK, the convolution library it tries before its im2col kernels when oneDNN is
/// off: <c>at::globalContext().setUserEnabledNNPACK(bool)</c>. On a CPU NNPACK does not support it fails to
/// initialise on every call and logs a warning each time.
/// </summary>
public static unsafe class Nnpack
{
    /// <summary>Whether libtorch may try NNPACK (its default: true); process-wide.</summary>
    public static bool Enabled
    {
        get { LibTorchContext.Bind(); return LibTorchContext.GetNnpack(LibTorchContext.Global()) != 0; }
        set { LibTorchContext.Bind(); LibTorchContext.SetNnpack(LibTorchContext.Global(), value ? (byte)1 : (byte)0); }
    }
}

/// <summary>The exported <c>at::Context</c> methods the switches call, bound once.</summary>
static unsafe class LibTorchContext
{
    const string Library = "libtorch_cpu.so";

    public static delegate* unmanaged<IntPtr> Global;
    public static delegate* unmanaged<IntPtr, byte> GetMkldnn, GetNnpack;
    public static delegate* unmanaged<IntPtr, byte, void> SetMkldnn, SetNnpack;

    public static void Bind()
    {
        if (SetNnpack != null) return;
        LabRuntime.EnsureLoaded();
        if (!NativeLibrary.TryLoad(Library, typeof(OneDnn).Assembly, null, out var handle))
            throw new NativeLoadException($"{Library} could not be loaded to switch oneDNN; leave train.onednn at its default");
        IntPtr Export(string name) => NativeLibrary.TryGetExport(handle, name, out var address) ? address
            : throw new NativeLoadException($"{Library} does not export {name} (a changed libtorch?); leave train.onednn at its default");
        Global = (delegate* unmanaged<IntPtr>)Export("_ZN2at13globalContextEv");
        GetMkldnn = (delegate* unmanaged<IntPtr, byte>)Export("_ZNK2at7Context17userEnabledMkldnnEv");
        SetMkldnn = (delegate* unmanaged<IntPtr, byte, void>)Export("_ZN2at7Context20setUserEnabledMkldnnEb");
        GetNnpack = (delegate* unmanaged<IntPtr, byte>)Export("_ZNK2at7Context17userEnabledNNPACKEv");
        SetNnpack = (delegate* unmanaged<IntPtr, byte, void>)Export("_ZN2at7Context20setUserEnabledNNPACKEb");
    }
}
