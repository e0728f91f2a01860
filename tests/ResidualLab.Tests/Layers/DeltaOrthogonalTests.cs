using ResidualLab.Connections;
using ResidualLab.Layers;
using ResidualLab.Models;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace ResidualLab.Tests.Layers;

/// <summary>Xiao et al. 2018's delta-orthogonal kernels and the scaled-orthogonal rule, checked as the specification's section 1.5 states them.</summary>
public class DeltaOrthogonalTests
{
    /// <summary>max |A - s^2 I| for the Gram matrix A of the orthonormal side of w ([out, in]).</summary>
    static double GramError(Tensor w, double s)
    {
        var gram = w.shape[0] >= w.shape[1] ? w.t().matmul(w) : w.matmul(w.t());
        return (gram - eye(gram.shape[0], dtype: w.dtype) * (s * s)).abs().max().item<double>();
    }

    [Theory]
    [InlineData(16, 16, ScalarType.Float32)]
    [InlineData(32, 16, ScalarType.Float32)] // a stride-2 layer that doubles the channels
    [InlineData(8, 16, ScalarType.Float32)]
    [InlineData(16, 16, ScalarType.Float64)]
    [InlineData(32, 16, ScalarType.Float64)]
    [InlineData(8, 16, ScalarType.Float64)]
    public void A_delta_kernel_is_orthogonal_at_the_centre_tap_and_zero_elsewhere(int cOut, int cIn, ScalarType dtype)
    {
        manual_seed(3);
        using var w = empty([cOut, cIn, 3, 3], dtype: dtype);
        DeltaOrthogonal.Conv(w, gain: Math.Sqrt(2));
        double s = Math.Sqrt(2) * Math.Max(Math.Sqrt((double)cOut / cIn), 1); // the SUO rescale

        using var offCentre = w.clone();
        offCentre[.., .., 1, 1].zero_();
        Assert.Equal(0.0, offCentre.abs().max().to(ScalarType.Float64).item<double>()); // exactly
        double tolerance = (dtype == ScalarType.Float32 ? 1e-5 : 1e-12) * s * s;
        Assert.True(GramError(w[.., .., 1, 1].to(ScalarType.Float64), s) < tolerance, $"Gram error {GramError(w[.., .., 1, 1].to(ScalarType.Float64), s)}");
    }

    [Theory]
    [InlineData(16, 16, 1)]
    [InlineData(32, 16, 2)]
    public void A_widening_or_square_delta_conv_preserves_every_locations_norm_times_s_squared(int cOut, int cIn, int stride)
    {
        manual_seed(5);
        using var w = empty([cOut, cIn, 3, 3], dtype: ScalarType.Float64);
        DeltaOrthogonal.Conv(w, gain: 1);
        double s2 = Math.Max((double)cOut / cIn, 1);
        using var x = randn([2, cIn, 9, 9], dtype: ScalarType.Float64);
        using var y = F.conv2d(x, w, strides: [stride, stride], padding: [1, 1]);
        using var kept = x[.., .., TensorIndex.Slice(null, null, stride), TensorIndex.Slice(null, null, stride)]; // the centre taps' positions
        using var ratio = y.square().sum(1) / kept.square().sum(1);
        Assert.True((ratio - s2).abs().max().item<double>() < 1e-12);
    }

    [Fact]
    public void Linear_weights_are_scaled_orthogonal_with_orthonormal_columns_or_rows()
    {
        manual_seed(7);
        foreach (var (rows, cols) in new[] { (64, 64), (128, 64), (64, 784), (10, 64) })
        {
            using var w = empty([rows, cols], dtype: ScalarType.Float64);
            DeltaOrthogonal.Linear(w, gain: 1.5);
            double s = 1.5 * Math.Max(Math.Sqrt((double)rows / cols), 1);
            Assert.True(GramError(w, s) < 1e-12 * s * s, $"{rows}x{cols}");
        }
    }

    [Fact]
    public void The_non_delta_rule_is_orthogonal_on_the_flattened_kernel()
    {
        manual_seed(9);
        foreach (int cOut in new[] { 4, 16 }) // 4 x 9: orthonormal rows, s = g; 16 x 9: columns, s = g sqrt(16 / 9)
        {
            using var w = empty([cOut, 1, 3, 3], dtype: ScalarType.Float64);
            DeltaOrthogonal.Conv(w, gain: Math.Sqrt(2), delta: false);
            double s = Math.Sqrt(2) * Math.Max(Math.Sqrt(cOut / 9.0), 1);
            Assert.True(GramError(w.reshape(cOut, 9), s) < 1e-12 * s * s);
            Assert.True(w.abs().sum().item<double>() > w[.., .., 1, 1].abs().sum().item<double>()); // not a delta
        }
    }

    [Fact]
    public void Xiao_et_al_s_variant_has_no_rescale()
    {
        manual_seed(2);
        using var w = empty([32, 16, 3, 3], dtype: ScalarType.Float64);
        DeltaOrthogonal.Conv(w, gain: 1, rescale: false);
        Assert.True(GramError(w[.., .., 1, 1], 1) < 1e-12);
    }

    [Fact]
    public void One_seed_gives_one_kernel_and_two_seeds_two()
    {
        Tensor Draw(int seed)
        {
            manual_seed(seed);
            var w = empty([8, 8, 3, 3]);
            DeltaOrthogonal.Conv(w, 1);
            return w;
        }
        using var a = Draw(1);
        using var b = Draw(1);
        using var c = Draw(2);
        Assert.True(a.equal(b).all().item<bool>());
        Assert.False(a.allclose(c));
    }

    [Fact]
    public void An_even_kernel_has_no_centre_and_is_refused()
    {
        using var w = empty([4, 4, 2, 2]);
        Assert.Contains("odd", Assert.Throws<ArgumentException>(() => DeltaOrthogonal.Conv(w, 1)).Message);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void A_plain_net_with_delta_orthogonal_init_has_it_in_every_layer(bool tat)
    {
        manual_seed(4);
        var config = new VisionConfig("plain", 20, 4, InChannels: 1, ImageSize: 28, Classes: 10)
        { Layers = new VisionLayers(VisionInit.DeltaOrthogonal, BatchNorm: false, TatEta: tat ? 0.9 : null) };
        using var model = (CifarResNet)config.Build(new NoResidualScheme(Norm: false));
        double gain = tat ? 1 : Math.Sqrt(2);

        Assert.Empty(model.modules().OfType<BatchNormLastDim>());
        Assert.Equal(19, model.Convolutions.Count);
        var conv1 = model.Convolutions[0].weight!.to(ScalarType.Float64);
        Assert.True(GramError(conv1.reshape(4, 9), gain) < 1e-5 * gain * gain); // non-delta on the image
        foreach (var conv in model.Convolutions.Skip(1))
        {
            var w = conv.weight!.to(ScalarType.Float64);
            double s = gain * Math.Max(Math.Sqrt((double)w.shape[0] / w.shape[1]), 1);
            Assert.Equal(w.abs().sum().item<double>(), w[.., .., 1, 1].abs().sum().item<double>(), 9);
            Assert.True(GramError(w[.., .., 1, 1], s) < 1e-5 * s * s);
            Assert.Equal(0.0, conv.bias!.abs().max().item<float>());
        }
        Assert.True(GramError(model.Classifier.weight!.to(ScalarType.Float64), 1) < 1e-5);
        Assert.Equal(0.0, model.Classifier.bias!.abs().max().item<float>());
    }
}
