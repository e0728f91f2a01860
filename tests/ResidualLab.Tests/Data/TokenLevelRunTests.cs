using System.Text.Json;
using ResidualLab.Checkpoints;
using ResidualLab.Config;
using ResidualLab.Data;
using ResidualLab.Data.Tokenizers;
using ResidualLab.Experiments;
using ResidualLab.Training;
using ResidualLab.Training.Tasks;
using static TorchSharp.torch;

namespace ResidualLab.Tests.Data;

public class TokenLevelRunTests
{
    static string RepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "ResidualLab.slnx"))) return dir.FullName;
        return Directory.GetCurrentDirectory();
    }

    [Fact]
    public void A_bpe_run_records_its_tokenizer_and_token_cache_and_its_export_encodes_as_training_did()
    {
        string dir = TestSupport.TempDir();
        string text = Path.Combine(dir, "corpus.txt");
        File.WriteAllText(text, TestSupport.TinyText());
        var config = TestSupport.TinyConfig("train.max_iters=20", $"data.path={text}", "data.tokenizer=bpe:300");
        string runDir = Path.Combine(dir, "runs", config.RunId);
        var result = TestSupport.Execute(config, runDir);
        Assert.Equal(RunStatus.Done, result.Status);

        using var provenance = JsonDocument.Parse(File.ReadAllText(Path.Combine(runDir, DataProvenance.FileName)));
        string cache = provenance.RootElement.GetProperty("token_cache").GetString()!;
        Assert.Equal(RegistryCorpus.Sha256(cache), provenance.RootElement.GetProperty("token_cache_sha256").GetString());
        Assert.Equal("bpe:300", provenance.RootElement.GetProperty("tokenizer").GetString());

        var exported = RunExport.Load(runDir);
        using var model = exported.Model;
        var learned = CorpusLoader.TokenizerFor("bpe:300", CorpusLoader.Splits(config.Gpt.Data));
        Assert.IsType<ByteBpeTokenizer>(exported.Tokenizer);
        Assert.Equal(learned.Id, exported.Tokenizer.Id);

        string file = Path.Combine(dir, "model.safetensors");
        exported.Save(file);
        var loaded = GptCheckpoint.Load(file);
        using var reloaded = loaded.Model;
        Assert.Equal(learned.Id, loaded.Tokenizer.Id);
        reloaded.eval();
        var corpus = CorpusLoader.Load(loaded.Config.Gpt.Data, config.Gpt.Shape.BlockSize, loaded.Tokenizer);
        double loss = LanguageModelTask.FixedBatchLoss(reloaded, corpus.Val, config.Train.BatchSize, config.Train.EvalBatches, CPU);
        Assert.Equal(result.FinalEval!.ValLoss, loss);
    }

    [Fact]
    public void The_gpt2_small_preset_is_gpt2_and_trains_a_few_steps_when_shrunk()
    {
        var preset = ConfigValues.FromTomlFile(Path.Combine(RepositoryRoot(), "configs", "gpt2-small.toml"));
        var full = RunConfig.From(preset);
        Assert.Equal((12, 768, 12, 1024), (full.Gpt.Shape.NLayer, full.Gpt.Shape.DModel, full.Gpt.Shape.NHead, full.Gpt.Shape.BlockSize));
        Assert.Equal("gpt2", full.Gpt.Data.Tokenizer);
        Assert.Equal("gutenberg", full.Gpt.Data.Corpus);

        string dir = TestSupport.TempDir();
        string text = Path.Combine(dir, "corpus.txt");
        File.WriteAllText(text, TestSupport.TinyText());
        foreach (var o in new[] { "model.n_layer=1", "model.d_model=16", "model.n_head=2", "model.block_size=16", "train.batch_size=2",
                     "train.max_iters=2", "train.warmup_iters=1", "train.eval_batches=1", $"data.path={text}" })
            preset.Override(o);
        var tiny = RunConfig.From(preset);
        string runDir = Path.Combine(dir, "runs", tiny.RunId);
        var result = TestSupport.Execute(tiny, runDir);
        Assert.Equal(RunStatus.Done, result.Status);
        Assert.True(double.IsFinite(result.FinalEval!.ValLoss));
        var exported = RunExport.Load(runDir);
        using var model = exported.Model;
        Assert.Same(Gpt2Tokenizer.Instance, exported.Tokenizer);
        Assert.Equal(50257, model.Config.VocabSize);

        // nanoGPT builds its GPT from the checkpoint's GPTConfig fields: GPT-2's vocabulary and the model's sizes.
        string file = Path.Combine(dir, "model.safetensors");
        exported.Save(file);
        using var nanoGpt = JsonDocument.Parse(SafeTensors.Read(file).Metadata[GptCheckpoint.NanoGptConfigKey]);
        var c = nanoGpt.RootElement;
        Assert.Equal((50257, 16, 1, 2, 16, true), (c.GetProperty("vocab_size").GetInt32(), c.GetProperty("block_size").GetInt32(),
            c.GetProperty("n_layer").GetInt32(), c.GetProperty("n_head").GetInt32(), c.GetProperty("n_embd").GetInt32(), c.GetProperty("bias").GetBoolean()));
        Assert.Equal("gpt2", c.GetProperty("tokenizer").GetString());
        Assert.Equal("""{"kind":"gpt2"}""", SafeTensors.Read(file).Metadata[GptCheckpoint.TokenizerKey]);
    }
}
