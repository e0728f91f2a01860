using ResidualLab.Connections;
using ResidualLab.Models;
using static TorchSharp.torch;

namespace ResidualLab.Tests.Models;

public class GptFlopsTests
{
    static ConnectionSite Site(int width, int index, int count) =>
        new(width, index, count, () => throw new InvalidOperationException("no norm is built"), SublayersPerLayer: 2);

    [Fact]
    public void Pre_norm_counts_its_layer_norm_and_the_addition()
    {
        // LN over 8 features: 7 x 8 = 56; x + y: 8.
        Assert.Equal(64, new PreNormScheme().ForwardFlops(Site(8, 0, 2)));
        Assert.Equal(0, new PreNormScheme().StreamFlops(8));
        Assert.Equal(0, new NoResidualScheme(Norm: false).ForwardFlops(Site(8, 0, 2)));
    }

    [Fact]
    public void Mhc_counts_its_three_maps_sinkhorn_read_and_write()
    {
        // n = 4, d = 8, 20 Sinkhorn rounds, by hand:
        //   x phi, phi [32, 2n + n^2 = 24]:       2 * 32 * 24 = 1536
        //   1 / rms over 32, times 24 coefficients:     64 + 24 =   88
        //   H_pre 3n + H_post 4n:                             28
        //   H_res alpha x + b:                   2 n^2 =       32
        //   Sinkhorn max-subtract and exp:       2 n^2 =       32
        //   20 rounds of row and column sums and divisions: 4 n^2 20 = 1280
        //   read H_pre x:                      2 n d =       64
        //   LN:                                  7 d =       56
        //   write [H_res | H_post] [x; y]: 2 n (n + 1) d =  320
        var mhc = new ManifoldHyperConnectionsScheme(N: 4, SinkhornIterations: 20);
        Assert.Equal(3436, mhc.ForwardFlops(Site(8, 3, 4)));
        Assert.Equal(24, mhc.StreamFlops(8)); // the sum of 4 streams of 8 at the output
    }

    [Fact]
    public void Hyper_connections_count_the_dynamic_weights_on_top_of_the_static_mixing()
    {
        // Static, n = 2, d = 8: read 2 n d = 32, LN 56, write 2 n (n + 1) d = 96.
        Assert.Equal(184, new HyperConnectionsScheme(N: 2, Dynamic: false).ForwardFlops(Site(8, 0, 2)));
        // Dynamic adds LN on each stream (2 x 56), [n, d] times [d, n + 2] (2 x 2 x 8 x 4 = 128), tanh and the
        // scaled sums (3 n (n + 2) = 24).
        Assert.Equal(184 + 112 + 128 + 24, new HyperConnectionsScheme(N: 2, Dynamic: true).ForwardFlops(Site(8, 0, 2)));
    }

    [Fact]
    public void DenseFormer_pays_for_the_averages_over_earlier_streams()
    {
        // Four sublayers, d = 8; pre-norm's 64 each, plus the average of the k + 1 streams before sublayer k > 0
        // (2 (k + 1) d) and, after the last, of all 5 streams (2 x 5 x 8 = 80).
        var dense = new DenseFormerScheme();
        Assert.Equal(64, dense.ForwardFlops(Site(8, 0, 4)));
        Assert.Equal(64 + 48, dense.ForwardFlops(Site(8, 2, 4)));
        Assert.Equal(64 + 64 + 80, dense.ForwardFlops(Site(8, 3, 4)));
    }

    public static TheoryData<string, string> EveryScheme()
    {
        var data = new TheoryData<string, string>();
        foreach (var name in ConnectionCatalog.Names) data.Add(name, "");
        data.Add("laurel", "lr");
        data.Add("hyper-connections", "static");
        return data;
    }

    [Theory]
    [MemberData(nameof(EveryScheme))]
    public void Every_scheme_counts_at_least_one_multiply_add_per_weight_of_its_matrices(string name, string variant)
    {
        // Each weight of a connection's own matrices (mHC's phi, HC's dynamic projection, the highway gate,
        // LAuReL's B and A) multiplies every token at least once: 2 FLOPs per weight per token, a floor any
        // scheme's count must clear, at every sublayer.
        var options = variant switch
        {
            "lr" => new Dictionary<string, object> { ["variant"] = "lr" },
            "static" => new Dictionary<string, object> { ["dynamic"] = false },
            _ => null,
        };
        var scheme = ConnectionCatalog.Create(name, options);
        const int width = 16, count = 4;
        for (int k = 0; k < count; k++)
        {
            var site = new ConnectionSite(width, k, count, () => nn.LayerNorm(width), SublayersPerLayer: 2);
            using var connection = scheme.Build(site);
            long matrixWeights = connection.parameters().Where(p => p.dim() == 2).Sum(p => p.numel());
            double flops = scheme.ForwardFlops(site);
            Assert.True(flops >= 2.0 * matrixWeights, $"{name} {variant} sublayer {k}: {flops} FLOPs for {matrixWeights} matrix weights");
            // Zero only where the connection does nothing at all: no parameter, no norm, nothing added (E-SPA, U-SPA: x = F(x)).
            bool idle = !connection.parameters().Any() && !connection.modules().Any();
            Assert.True((idle ? flops >= 0 : flops > 0) && double.IsFinite(flops), $"{name} {variant} sublayer {k}: {flops}");
        }
    }

    [Fact]
    public void A_gpt_step_counts_three_passes_over_matmuls_attention_and_connections()
    {
        // V = 10, L = 1, d = 8, T = 4, batch 2, pre-norm. Per token forward: 2 (12 d^2 + V d) = 1696,
        // attention 4 T d = 128, two pre-norm connections 2 x 64 = 128: 1952. Step: 3 x 2 x 4 x 1952.
        var model = new GptConfig(10, NLayer: 1, DModel: 8, NHead: 2, BlockSize: 4);
        Assert.Equal(46848, GptFlops.TrainingPerStep(model, new PreNormScheme(), batchSize: 2));
        // mHC with n = 4 instead: two sublayers of 3436 and the output's sum of streams, 24.
        var mhc = new ManifoldHyperConnectionsScheme(N: 4, SinkhornIterations: 20);
        Assert.Equal(3.0 * 2 * 4 * (1824 + 2 * 3436 + 24), GptFlops.TrainingPerStep(model, mhc, batchSize: 2));
    }

    [Theory]
    [InlineData("pre-norm")]
    [InlineData("e-spa")]
    [InlineData("sas")] // no value and output projections, but block 0's learned value
    public void The_matrix_count_is_the_weights_the_built_model_multiplies_by(string scheme)
    {
        var config = new GptConfig(13, NLayer: 2, DModel: 16, NHead: 2, BlockSize: 8, Bias: false);
        var connection = ConnectionCatalog.Create(scheme);
        using var model = new Gpt(config, connection);
        long matrices = model.named_parameters()
            .Where(p => p.parameter.dim() == 2 && p.name != "wpe.weight") // the position table is looked up, not multiplied
            .Sum(p => p.parameter.numel());
        Assert.Equal(2.0 * matrices + 4.0 * 2 * 8 * 16, GptFlops.MatmulForwardPerToken(config, connection));
    }
}
