using ResidualLab.Diagnostics;
using ResidualLab.Models;
using ResidualLab.Training;

namespace ResidualLab.Tests.Diagnostics;

// Training-time stream probes: they read, they never change what training computes.
public class StreamProbeTests
{
    sealed class Recorder : ITrainingObserver
    {
        public List<StepMetrics> Steps { get; } = [];
        public List<Diagnostic> Diagnostics { get; } = [];
        public void OnStep(StepMetrics step) => Steps.Add(step);
        public void OnDiagnostic(Diagnostic diagnostic) => Diagnostics.Add(diagnostic);
    }

    static Recorder Train(string scheme, int probeInterval, int steps = 12, params string[] options)
    {
        var config = TestSupport.TinyConfig([$"connection.name={scheme}", "model.n_layer=2",
            $"train.max_iters={steps}", $"train.probe_interval={probeInterval}", .. options]);
        var recorder = new Recorder();
        TestSupport.GptTrainer(config, TestSupport.TinyCorpus(config.Gpt.Shape.BlockSize)).Trainer.Run(recorder);
        return recorder;
    }

    [Theory]
    [InlineData("pre-norm")]
    [InlineData("mhc")]
    public void Probes_on_leave_the_losses_and_gradient_norms_bit_identical(string scheme)
    {
        var off = Train(scheme, 0);
        var on = Train(scheme, 1);
        Assert.Empty(off.Diagnostics); // no probe readings
        Assert.Equal(off.Steps.Select(s => (s.Loss, s.GradNorm)), on.Steps.Select(s => (s.Loss, s.GradNorm)));
        var names = on.Diagnostics.Select(d => d.Name).ToHashSet();
        foreach (var name in new[] { "grad_norm", "resid_pre_rms", "resid_mid_rms", "resid_post_rms", "update_ratio", "resid_pre_grad_norm", "token_cosine" })
            Assert.Contains(name, names);
        Assert.Equal(scheme == "mhc", names.Contains("h_res_gain_fwd"));
        Assert.All(on.Diagnostics, d => Assert.True(double.IsFinite(d.Value), $"{d.Name}[{d.Index}] = {d.Value}"));
        Assert.All(on.Diagnostics.Where(d => d.Name == "resid_pre_grad_norm"), d => Assert.True(d.Value > 0));
    }

    [Theory]
    [InlineData("hyper-connections")]
    [InlineData("mhc")]
    public void A_single_stream_is_probed_without_a_stream_cosine(string scheme)
    {
        var on = Train(scheme, 1, 3, "connection.n=1");
        Assert.Equal(3, on.Steps.Count);
        Assert.Contains(on.Diagnostics, d => d.Name == "resid_post_rms");
        Assert.DoesNotContain(on.Diagnostics, d => d.Name == "stream_cosine");
        Assert.All(on.Diagnostics, d => Assert.True(double.IsFinite(d.Value), $"{d.Name}[{d.Index}] = {d.Value}"));
    }

    [Fact]
    public void Hyper_connections_at_init_have_an_identity_h_res_product_of_gain_1()
    {
        // HC starts at A_r = I and its dynamic term is exactly zero, so every H_res and their product is I.
        var atInit = Train("hyper-connections", 1, steps: 1).Diagnostics;
        var gains = atInit.Where(d => d.Name is "h_res_gain_fwd" or "h_res_gain_bwd").ToList();
        Assert.Equal(2 * 4, gains.Count); // both gains for each of the 4 prefixes of 2 blocks x 2 sublayers
        Assert.All(gains, g => Assert.Equal(1.0, g.Value));
        Assert.All(atInit.Where(d => d.Name is "h_res_row_err" or "h_res_col_err"), d => Assert.Equal(0.0, d.Value));
    }

    [Fact]
    public void The_token_cosine_is_one_for_copies_and_zero_for_orthogonal_tokens_and_read_at_every_position()
    {
        using var copies = TorchSharp.torch.randn(1, 1, 8).expand(3, 5, 8) * TorchSharp.torch.arange(1, 6).view(1, 5, 1); // scaled copies
        Assert.Equal(1.0, StreamHealth.TokenCosine(copies).item<double>(), 12);
        using var orthogonal = TorchSharp.torch.eye(4).view(1, 4, 4);
        Assert.Equal(0.0, StreamHealth.TokenCosine(orthogonal).item<double>(), 12);
        using var streams = TorchSharp.torch.randn(1, 1, 2, 8).expand(2, 4, 2, 8); // [b, t, s, d]: the tokens are taken whole
        Assert.Equal(1.0, StreamHealth.TokenCosine(streams).item<double>(), 12);

        var d = Train("pre-norm", 5, steps: 3).Diagnostics;
        Assert.Equal([0, 2], d.Where(x => x.Name == "token_cosine").Select(x => x.Step).Distinct().Order()); // at init and on the last step
        foreach (int step in new[] { 0, 2 })
            Assert.Equal(Enumerable.Range(0, 2 * 2 + 1), d.Where(x => x.Name == "token_cosine" && x.Step == step).Select(x => x.Index).Order());
        Assert.All(d.Where(x => x.Name == "token_cosine"), x => Assert.InRange(x.Value, -1, 1));
    }

    [Fact]
    public void Pre_norm_stream_rms_and_update_ratio_match_the_stream_they_read()
    {
        var d = Train("pre-norm", 1, steps: 1).Diagnostics;
        double Value(string name, int index) => d.Single(x => x.Name == name && x.Index == index).Value;
        // resid_post of block 0 is resid_pre of block 1; the two sublayers of a block give two ratios.
        Assert.Equal(Value("resid_post_rms", 0), Value("resid_pre_rms", 1));
        Assert.Equal(4, d.Count(x => x.Name == "update_ratio"));
        Assert.All(d.Where(x => x.Name == "update_ratio"), x => Assert.InRange(x.Value, 1e-6, 10));
    }

    [Fact]
    public void Mhc_streams_stay_copies_when_read_uniformly_and_diversify_when_read_as_hc_does()
    {
        // Uniform read and write: nothing but phi's 0.01-scaled term tells the streams apart, and with copies
        // H_res x = x for any doubly stochastic H_res, so the gradient reaching H_res's bias all but vanishes.
        var uniform = Train("mhc", 1, 12, "connection.init=uniform", "connection.res_diag=0").Diagnostics;
        var stream = Train("mhc", 1, 12).Diagnostics;
        double Last(List<Diagnostic> d, string name, int index) => d.Last(x => x.Name == name && x.Index == index).Value;
        double MeanRatio(List<Diagnostic> d) => d.Where(x => x.Name == "h_res_grad_ratio").Average(x => x.Value);
        Assert.Equal(1.0, uniform.First(x => x.Name == "stream_cosine" && x.Index == 0).Value, 3);
        Assert.True(Last(uniform, "stream_cosine", 1) > 0.999, $"uniform: {Last(uniform, "stream_cosine", 1)}");
        Assert.True(Last(stream, "stream_cosine", 1) < Last(uniform, "stream_cosine", 1));
        Assert.True(MeanRatio(stream) > 10 * MeanRatio(uniform), $"H_res gradient ratio: stream {MeanRatio(stream)}, uniform {MeanRatio(uniform)}");
        Assert.Equal(4, uniform.Count(x => x.Name == "h_res_entropy" && x.Step == 0));
    }

    [Fact]
    public void Mhc_stream_write_separates_the_streams_at_init_and_sends_gradient_to_h_res()
    {
        var alike = Train("mhc", 1, 1).Diagnostics;
        var apart = Train("mhc", 1, 1, "connection.write=stream").Diagnostics;
        double Cosine(List<Diagnostic> d) => d.Single(x => x.Name == "stream_cosine" && x.Index == 0).Value;
        double MeanRatio(List<Diagnostic> d) => d.Where(x => x.Name == "h_res_grad_ratio").Average(x => x.Value);
        Assert.True(Cosine(alike) > 0.999, $"uniform write: {Cosine(alike)}");
        Assert.True(Cosine(apart) < Cosine(alike) - 1e-3, $"stream write: {Cosine(apart)}");
        Assert.True(MeanRatio(apart) > 10 * MeanRatio(alike), $"H_res gradient ratio: stream write {MeanRatio(apart)}, uniform {MeanRatio(alike)}");
    }
}
