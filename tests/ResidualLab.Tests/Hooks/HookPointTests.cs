using ResidualLab.Connections;
using ResidualLab.Diagnostics;
using ResidualLab.Hooks;
using ResidualLab.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace ResidualLab.Tests.Hooks;

/// <summary>Named hook points of the GPT: the cache reads what the model computes; patching replaces it.</summary>
public class HookPointTests
{
    static readonly GptConfig Tiny = new(VocabSize: 13, NLayer: 3, DModel: 16, NHead: 2, BlockSize: 8);

    static Gpt Model(string scheme)
    {
        manual_seed(5);
        var model = new Gpt(Tiny, ConnectionCatalog.Create(scheme));
        model.to(ScalarType.Float64);
        model.eval();
        return model;
    }

    static Tensor Tokens() => tensor(new long[] { 1, 5, 2, 7, 3, 3, 9, 12, 0, 4, 8, 6, 11, 2, 5, 1 }, [2, 8]);

    static double MaxDiff(Tensor a, Tensor b) => (a - b).abs().max().item<double>();

    [Theory]
    [InlineData("pre-norm")]
    [InlineData("mhc")]
    [InlineData("hyper-connections")]
    public void The_cache_at_the_last_resid_post_is_the_stream_the_head_reads(string scheme)
    {
        using var model = Model(scheme);
        using var _ = no_grad();
        var (logits, cache) = model.RunWithCache(Tokens());
        Assert.Equal(HookNames.Gpt(Tiny.NLayer), cache.Names);
        var last = cache[HookNames.ResidPost(Tiny.NLayer - 1)];
        Assert.Equal(scheme == "pre-norm" ? 3 : 4, (int)last.dim()); // multi-stream schemes keep the stream axis
        Assert.Equal(0, MaxDiff(model.Connection.Reduce(last), model.Forward(Tokens())));
        Assert.Equal(0, MaxDiff(model.Head(model.Connection.Reduce(last)), logits));
        Assert.Equal(0, MaxDiff(logits, model.call(Tokens())));
        // resid_post of a block is resid_pre of the next.
        Assert.Equal(0, MaxDiff(cache[HookNames.ResidPost(0)], cache[HookNames.ResidPre(1)]));
    }

    [Theory]
    [InlineData("pre-norm")]
    [InlineData("mhc")]
    public void Patching_every_hook_with_its_own_clean_value_changes_nothing(string scheme)
    {
        using var model = Model(scheme);
        using var _ = no_grad();
        var (clean, cache) = model.RunWithCache(Tokens());
        var patched = model.Run(Tokens(), new HookSet().Add(_ => true, (name, _) => cache[name].clone()));
        Assert.Equal(0, MaxDiff(clean, patched));
        // A patch does act: zeroing the last MLP's output changes the logits.
        var zeroed = model.Run(Tokens(), new HookSet().Add(HookNames.MlpOut(Tiny.NLayer - 1), (_, x) => zeros_like(x)));
        Assert.True(MaxDiff(clean, zeroed) > 1e-6);
    }

    [Fact]
    public void A_lesion_hook_makes_the_block_the_identity()
    {
        using var model = Model("mhc");
        using var _ = no_grad();
        var (_, cache) = model.RunWithCache(Tokens());
        var lesioned = new ActivationCache();
        model.Run(Tokens(), LayerProbes.LesionHooks(1).Cache(lesioned));
        Assert.Equal(0, MaxDiff(lesioned[HookNames.ResidPost(1)], lesioned[HookNames.ResidPre(1)]));
        Assert.Equal(0, MaxDiff(lesioned[HookNames.ResidPre(1)], cache[HookNames.ResidPre(1)]));
        Assert.True(MaxDiff(lesioned[HookNames.ResidPost(1)], cache[HookNames.ResidPost(1)]) > 1e-6);
    }

    [Fact]
    public void The_streams_of_an_expanded_stream_have_cosine_exactly_1()
    {
        using var model = Model("mhc");
        using var _ = no_grad();
        var (_, cache) = model.RunWithCache(Tokens());
        Assert.Equal(1.0, StreamHealth.StreamCosine(cache[HookNames.ResidPre(0)]).item<double>(), 14);
        var distinct = randn(2, 8, 4, 16, dtype: ScalarType.Float64);
        Assert.True(StreamHealth.StreamCosine(distinct).item<double>() < 0.5);
    }

    [Fact]
    public void H_res_entropy_and_distance_from_uniform_at_the_extremes()
    {
        const int n = 4;
        var uniform = full(n, n, 1.0 / n, dtype: ScalarType.Float64);
        var identity = eye(n, dtype: ScalarType.Float64);
        Assert.Equal(Math.Log(n), StreamHealth.RowEntropy(uniform).item<double>(), 12);
        Assert.Equal(0, StreamHealth.RowEntropy(identity).item<double>(), 12);
        Assert.Equal(0, StreamHealth.DistanceFromUniform(uniform).item<double>(), 12);
        Assert.Equal(Math.Sqrt(n - 1), StreamHealth.DistanceFromUniform(identity).item<double>(), 12);
        var products = StreamHealth.RunningProducts([identity, uniform, identity]).ToList();
        Assert.Equal(0, StreamHealth.DistanceFromUniform(products[^1]).item<double>(), 12); // once averaged, always averaged
    }
}

/// <summary>The vision models' residual stacks pass the same kind of hook points.</summary>
public class VisionHookPointTests
{
    [Fact]
    public void A_resnet_names_its_stages_blocks_and_self_patching_changes_nothing()
    {
        manual_seed(2);
        using var model = new CifarResNet(new VisionConfig("resnet", 14, 4, 3, 8, 10), ConnectionCatalog.Create("residual"), shortcuts: true);
        model.eval();
        using var _ = no_grad();
        var images = randn(2, 3, 8, 8);
        var clean = model.call(images);
        var cache = new ActivationCache();
        model.Hooks = new HookSet().Cache(cache);
        var cached = model.call(images);
        // 2 blocks per stage: the first stage has both on the stream, the others one after down-sampling.
        Assert.Equal(["stages.0.blocks.0.hook_resid_pre", "stages.0.blocks.0.hook_resid_post", "stages.0.blocks.1.hook_resid_pre",
            "stages.0.blocks.1.hook_resid_post", "stages.1.blocks.0.hook_resid_pre", "stages.1.blocks.0.hook_resid_post",
            "stages.2.blocks.0.hook_resid_pre", "stages.2.blocks.0.hook_resid_post"], cache.Names);
        Assert.Equal(0, (cached - clean).abs().max().item<float>());
        model.Hooks = new HookSet().Add(_ => true, (name, _) => cache[name].clone());
        Assert.Equal(0, (model.call(images) - clean).abs().max().item<float>());
        model.Hooks = new HookSet().Add("stages.2.blocks.0.hook_resid_post", (_, x) => zeros_like(x));
        Assert.True((model.call(images) - clean).abs().max().item<float>() > 1e-6);
    }
}
