using ResidualLab.Checkpoints;
using ResidualLab.Data.Tokenizers;
using ResidualLab.Models;
using ResidualLab.Results;
using ResidualLab.Training.Tasks;
using static TorchSharp.torch;

namespace ResidualLab.Tests.Checkpoints;

public class GptCheckpointTests
{
    static GptCheckpoint Fresh(string scheme, int layers = 2)
    {
        var config = TestSupport.TinyConfig($"connection.name={scheme}", $"model.n_layer={layers}");
        var corpus = TestSupport.TinyCorpus(config.Gpt.Shape.BlockSize);
        manual_seed(21);
        var model = new Gpt(config.Gpt.Shape with { VocabSize = corpus.VocabSize }, config.Connection);
        return new GptCheckpoint(model, config, corpus.Tokenizer);
    }

    static IReadOnlyList<char> Vocabulary(GptCheckpoint checkpoint) => ((CharTokenizer)checkpoint.Tokenizer).Vocabulary;

    static string SaveToTemp(GptCheckpoint checkpoint)
    {
        string path = Path.Combine(TestSupport.TempDir(), "model.safetensors");
        checkpoint.Save(path);
        return path;
    }

    [Fact]
    public void Pre_norm_tensors_carry_nanogpt_names()
    {
        var checkpoint = Fresh("pre-norm");
        using var model = checkpoint.Model;
        var names = SafeTensors.Read(SaveToTemp(checkpoint)).Tensors.Select(t => t.Name).Order(StringComparer.Ordinal);
        string[] perBlock = ["ln_1.weight", "ln_1.bias", "attn.c_attn.weight", "attn.c_attn.bias", "attn.c_proj.weight", "attn.c_proj.bias",
            "ln_2.weight", "ln_2.bias", "mlp.c_fc.weight", "mlp.c_fc.bias", "mlp.c_proj.weight", "mlp.c_proj.bias"];
        var expected = new[] { "transformer.wte.weight", "transformer.wpe.weight", "transformer.ln_f.weight", "transformer.ln_f.bias", "lm_head.weight" }
            .Concat(Enumerable.Range(0, 2).SelectMany(i => perBlock.Select(p => $"transformer.h.{i}.{p}")))
            .Order(StringComparer.Ordinal);
        Assert.Equal(expected, names);
    }

    [Fact]
    public void Other_schemes_keep_their_module_names()
    {
        Assert.Equal("transformer.h.3.conn_attn.norm.weight", NanoGptNames.ToCheckpoint("h.3.conn_attn.norm.weight", new ResidualLab.Connections.PostNormScheme()));
        Assert.Equal("transformer.h.3.ln_2.bias", NanoGptNames.ToCheckpoint("h.3.conn_mlp.norm.bias", new ResidualLab.Connections.PreNormScheme()));
        Assert.Equal("transformer.h.3.attn.c_attn.weight", NanoGptNames.ToCheckpoint("h.3.attn.c_attn.weight", new ResidualLab.Connections.PreNormScheme()));
    }

    [Theory]
    [InlineData("pre-norm")]
    [InlineData("post-norm")]
    [InlineData("none")]
    public void Loading_restores_the_model_exactly(string scheme)
    {
        var original = Fresh(scheme);
        using var model = original.Model;
        var loaded = GptCheckpoint.Load(SaveToTemp(original));
        using var restored = loaded.Model;

        Assert.Equal(original.Config.Canonical, loaded.Config.Canonical);
        Assert.Equal(Vocabulary(original), Vocabulary(loaded));
        model.eval();
        restored.eval();
        using var _ = no_grad();
        var idx = randint(0, original.Tokenizer.VocabSize, [3, 16], dtype: ScalarType.Int64);
        Assert.True(SameBits(model.call(idx), restored.call(idx)), "logits differ");
        var expected = model.state_dict();
        foreach (var (name, tensor) in restored.state_dict()) Assert.True(SameBits(tensor, expected[name]), name);
    }

    static bool SameBits(Tensor a, Tensor b) =>
        a.shape.SequenceEqual(b.shape) && TensorBytes.FromTensor("a", a).Data.Span.SequenceEqual(TensorBytes.FromTensor("b", b).Data.Span);

    [Fact]
    public void Loaded_checkpoint_gives_the_trainers_val_loss()
    {
        var config = TestSupport.TinyConfig("train.max_iters=30");
        var corpus = TestSupport.TinyCorpus(config.Gpt.Shape.BlockSize);
        var (task, trainer) = TestSupport.GptTrainer(config, corpus);
        var result = trainer.Run();
        string path = SaveToTemp(new GptCheckpoint(task.Model, config, corpus.Tokenizer));
        task.Dispose();

        var loaded = GptCheckpoint.Load(path);
        using var model = loaded.Model;
        model.eval();
        var reencoded = ResidualLab.Data.CharCorpus.FromText(TestSupport.TinyText(), config.Gpt.Data.ValFraction, config.Gpt.Shape.BlockSize, "tiny", Vocabulary(loaded), config.Gpt.Data.TestFraction);
        double loss = LanguageModelTask.FixedBatchLoss(model, reencoded.Val, config.Train.BatchSize, config.Train.EvalBatches, CPU);
        Assert.Equal(result.FinalEval!.ValLoss, loss);
    }

    static string Rewrite(string path, Func<SafeTensorsFile, SafeTensorsFile> change)
    {
        string changed = Path.Combine(Path.GetDirectoryName(path)!, "changed.safetensors");
        SafeTensors.Write(changed, change(SafeTensors.Read(path)));
        return changed;
    }

    [Fact]
    public void A_head_that_differs_from_the_embedding_is_refused()
    {
        var checkpoint = Fresh("pre-norm", layers: 1);
        using var model = checkpoint.Model;
        string path = Rewrite(SaveToTemp(checkpoint), f => f with
        {
            Tensors = f.Tensors.Select(t => t.Name == NanoGptNames.LmHead ? t with { Data = new byte[t.Data.Length] } : t).ToList(),
        });
        var ex = Assert.Throws<SafeTensorsException>(() => GptCheckpoint.Load(path));
        Assert.Contains("'lm_head.weight' differs from 'transformer.wte.weight'", ex.Message);
    }

    [Fact]
    public void Missing_or_extra_tensors_and_missing_metadata_are_clear_errors()
    {
        var checkpoint = Fresh("pre-norm", layers: 1);
        using var model = checkpoint.Model;
        string path = SaveToTemp(checkpoint);

        var missing = Rewrite(path, f => f with { Tensors = f.Tensors.Where(t => t.Name != "transformer.h.0.ln_2.bias").ToList() });
        Assert.Contains("tensor 'transformer.h.0.ln_2.bias' is missing", Assert.Throws<SafeTensorsException>(() => GptCheckpoint.Load(missing)).Message);

        var extra = Rewrite(path, f => f with { Tensors = [.. f.Tensors, f.Tensors[0] with { Name = "transformer.h.0.attn.bias" }] });
        Assert.Contains("unexpected tensors: transformer.h.0.attn.bias", Assert.Throws<SafeTensorsException>(() => GptCheckpoint.Load(extra)).Message);

        var bare = Rewrite(path, f => f with { Metadata = new Dictionary<string, string>() });
        Assert.Contains("no 'reslab.config' in its metadata", Assert.Throws<SafeTensorsException>(() => GptCheckpoint.Load(bare)).Message);
    }

    [Fact]
    public void A_run_folder_exports_with_its_recorded_vocabulary_or_its_data()
    {
        string dir = TestSupport.TempDir();
        string corpus = Path.Combine(dir, "corpus.txt");
        File.WriteAllText(corpus, TestSupport.TinyText());
        var config = TestSupport.TinyConfig("train.max_iters=3", $"data.path={corpus}");
        string runDir = Path.Combine(dir, "runs", config.RunId);
        TestSupport.Execute(config, runDir);

        Assert.Equal(runDir, RunFiles.FindRunFolder(config.RunId, dir));
        var recorded = RunExport.Load(runDir);
        using var model = recorded.Model;
        File.Delete(Path.Combine(runDir, VocabularyJson.RunFileName)); // a folder from before runs recorded it
        var rebuilt = RunExport.Load(runDir);
        using var rebuiltModel = rebuilt.Model;

        Assert.Equal(((CharTokenizer)TestSupport.TinyCorpus().Tokenizer).Vocabulary, Vocabulary(recorded));
        Assert.Equal(Vocabulary(recorded), Vocabulary(rebuilt));
        Assert.Equal(config.Canonical, recorded.Config.Canonical);
        var expected = model.state_dict();
        foreach (var (name, tensor) in rebuiltModel.state_dict()) Assert.True(SameBits(tensor, expected[name]), name);
    }
}
