using System.Collections.Concurrent;
using System.Diagnostics;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace ResidualLab.Native;

/// <summary>
/// What <see cref="OneDnnProbe"/> found: whether oneDNN's convolutions agreed with libtorch's own kernels at
/// 1 thread and at <paramref name="Threads"/>, the first disagreement or the largest difference, and what the
/// check cost.
/// </summary>
internal sealed record OneDnnVerdict(bool Sound, int Threads, string Finding, TimeSpan Cost)
{
    /// <summary>"sound at 2 threads (largest relative difference from libtorch's own kernels 3.1e-7; probe 0.12 s)", or "unsound at 2 threads (...)".</summary>
    public string Describe() =>
        $"{(Sound ? "sound" : "unsound")} at {Threads} thread{(Threads == 1 ? "" : "s")} ({Finding}; probe {Cost.TotalSeconds:0.00} s)";
}

/// <summary>
/// A numerical check of libtorch's oneDNN convolutions on this CPU, run once per process and thread count
/// before train.onednn = auto lets runs use oneDNN (<see cref="OneDnnChoice"/>). oneDNN picks its kernels and its
/// padded, blocked channel layouts by the CPU's vector width and the thread count, and on some CPUs it has returned
/// non-finite or wrong gradients for channel counts below a vector register (docs/results/degradation.md, CPU kernels).
/// The probe runs every kind of convolution the vision models use at widths <see cref="Widths"/>, laid out as they
/// run them (channel-last activations viewed as [b, c, y, x], as <see cref="Models.CifarResNet.Convolve"/> passes
/// them; the first layer on channel-first images): on [8, 16, 16, c] activations, 3x3 convolutions c to c (stride 1)
/// and c to 2c (stride 2), with a bias (the nets without batch norm) and without, and the first 3x3 layer from 1 and
/// from 3 image channels (RepVGG's 1x1 branches are matrix multiplies, not convolutions); each forward and backward (output,
/// input gradient, weight and bias gradients) with oneDNN at 1 thread and at the run's thread count, against
/// libtorch's own kernels at 1 thread. Sound: every value finite and every relative difference (norm of the
/// difference over the norm of the reference) at most <see cref="Tolerance"/>; float32 rounding of these sums is
/// around 1e-7, the failures seen were 1e-2 and larger. The data come from a private generator (libtorch's global
/// one is untouched); oneDNN's and NNPACK's switches and the thread count are restored afterwards.
/// </summary>
internal static class OneDnnProbe
{
    /// <summary>Channel counts probed: below, at half of and at one AVX-512 register of float32.</summary>
    public static readonly IReadOnlyList<int> Widths = [4, 8, 16];

    /// <summary>The largest relative difference from libtorch's own kernels that still counts as sound.</summary>
    public const double Tolerance = 1e-4;

    const int Batch = 8, Size = 16;
    const ulong Seed = 20240;

    static readonly ConcurrentDictionary<int, Lazy<OneDnnVerdict>> Verdicts = new();

    /// <summary>
    /// The verdict at <paramref name="threads"/>, probed on first use in this process; a run records it with its
    /// environment (<c>environment.onednn</c>, shown by <c>reslab report</c>). Nothing is printed: stderr is kept for
    /// errors, one line each, and a sweep's children would print it once per run.
    /// </summary>
    public static OneDnnVerdict At(int threads) => Verdicts.GetOrAdd(threads, t => new Lazy<OneDnnVerdict>(() => Run(t))).Value;

    /// <summary>Runs the check now (not cached).</summary>
    public static OneDnnVerdict Run(int threads)
    {
        var clock = Stopwatch.StartNew();
        bool enabledBefore = OneDnn.Enabled, nnpackBefore = Nnpack.Enabled;
        int threadsBefore = get_num_threads();
        try
        {
            using var scope = NewDisposeScope();
            var generator = new Generator(Seed);
            var shapes = Shapes().Select(shape => (Shape: shape, Data: shape.Data(generator))).ToList();
            Nnpack.Enabled = false; // the reference: libtorch's im2col kernels (NNPACK would log a warning per call where it cannot initialise)
            // Each setting once for every shape: libtorch's thread pool is resized only when the setting changes.
            var reference = shapes.Select(s => s.Shape.Pass(s.Data, oneDnn: false, threads: 1)).ToList();
            double largest = 0;
            foreach (int t in threads == 1 ? [1] : new[] { 1, threads })
                for (int i = 0; i < shapes.Count; i++)
                {
                    var result = shapes[i].Shape.Pass(shapes[i].Data, oneDnn: true, threads: t);
                    foreach (var (what, value, expected) in result.Zip(reference[i], (r, e) => (r.What, r.Value, e.Value)))
                    {
                        string where = $"{shapes[i].Shape.Name}, {t} thread{(t == 1 ? "" : "s")}";
                        if (!value.isfinite().all().item<bool>())
                            return new OneDnnVerdict(false, threads, $"{where}: the {what} is not finite", clock.Elapsed);
                        double difference = ((value - expected).norm() / expected.norm()).item<float>();
                        if (!(difference <= Tolerance))
                            return new OneDnnVerdict(false, threads, $"{where}: the {what} differs from libtorch's own kernels' by {difference:0.0%}", clock.Elapsed);
                        largest = Math.Max(largest, difference);
                    }
                }
            return new OneDnnVerdict(true, threads, $"largest relative difference from libtorch's own kernels {largest:0.0e+0}", clock.Elapsed);
        }
        finally
        {
            OneDnn.Enabled = enabledBefore;
            Nnpack.Enabled = nnpackBefore;
            set_num_threads(threadsBefore);
        }
    }

    static IEnumerable<ConvolutionShape> Shapes()
    {
        foreach (int w in Widths)
        {
            foreach (bool bias in new[] { false, true })
            {
                string withBias = bias ? ", with bias" : "";
                yield return new ConvolutionShape($"3x3 stride 1, {w} to {w} channels{withBias}", w, w, 3, 1, bias, ChannelLast: true);
                yield return new ConvolutionShape($"3x3 stride 2, {w} to {2 * w} channels{withBias}", w, 2 * w, 3, 2, bias, ChannelLast: true);
            }
            yield return new ConvolutionShape($"first layer, 1 image channel to {w}", 1, w, 3, 1, Bias: false, ChannelLast: false);
            yield return new ConvolutionShape($"first layer, 3 image channels to {w}, with bias", 3, w, 3, 1, Bias: true, ChannelLast: false);
        }
    }

    /// <summary>A convolution as a vision model runs it: on channel-last activations (input gradient needed), or the first
    /// layer on channel-first images (not); "same" padding.</summary>
    sealed record ConvolutionShape(string Name, int InChannels, int OutChannels, int Kernel, int Stride, bool Bias, bool ChannelLast)
    {
        public (Tensor Input, Tensor Weight, Tensor? Bias, Tensor Upstream) Data(Generator generator)
        {
            int outSize = (Size - 1) / Stride + 1;
            long[] input = ChannelLast ? [Batch, Size, Size, InChannels] : [Batch, InChannels, Size, Size];
            long[] output = ChannelLast ? [Batch, outSize, outSize, OutChannels] : [Batch, OutChannels, outSize, outSize];
            var weight = randn([OutChannels, InChannels, Kernel, Kernel], generator: generator) / Math.Sqrt(Kernel * Kernel * InChannels);
            return (randn(input, generator: generator), weight, Bias ? randn([OutChannels], generator: generator) : null, randn(output, generator: generator));
        }

        public List<(string What, Tensor Value)> Pass((Tensor Input, Tensor Weight, Tensor? Bias, Tensor Upstream) data, bool oneDnn, int threads)
        {
            OneDnn.Enabled = oneDnn;
            set_num_threads(threads);
            var x = data.Input.detach().requires_grad_(ChannelLast);
            var w = data.Weight.detach().requires_grad_(true);
            var b = data.Bias?.detach().requires_grad_(true);
            long pad = Kernel / 2;
            var y = ChannelLast
                ? F.conv2d(x.permute(0, 3, 1, 2), w, b, strides: [Stride, Stride], padding: [pad, pad]).permute(0, 2, 3, 1)
                : F.conv2d(x, w, b, strides: [Stride, Stride], padding: [pad, pad]);
            (y * data.Upstream).sum().backward();
            var values = new List<(string, Tensor)> { ("output", y.detach()), ("weight gradient", w.grad!) };
            if (b is not null) values.Add(("bias gradient", b.grad!));
            if (ChannelLast) values.Add(("input gradient", x.grad!));
            return values;
        }
    }
}
