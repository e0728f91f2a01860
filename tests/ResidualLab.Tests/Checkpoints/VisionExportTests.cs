using ResidualLab.Checkpoints;
using ResidualLab.Config;
using ResidualLab.Data;
using ResidualLab.Experiments;
using ResidualLab.Models;
using ResidualLab.Tests.Data;
using static TorchSharp.torch;

namespace ResidualLab.Tests.Checkpoints;

public class VisionExportTests
{
    [Fact]
    public void A_trained_RepVGG_exports_fused_as_the_plain_net_its_config_names_and_computes_the_same()
    {
        string images = IdxTests.WriteSet(trainCount: 200, testCount: 40, size: 12);
        var values = new ConfigValues();
        foreach (var o in new[]
                 {
                     "model.name=repvgg", "connection.name=none", "connection.norm=false", "model.depth=14", "model.width=4",
                     $"data.images={images}", "data.val_images=40", "train.batch_size=16", "train.max_iters=3", "train.eval_batches=1",
                     "train.threads=1", "train.onednn=off",
                 })
            values.Override(o);
        var config = RunConfig.From(values);
        string runDir = TestSupport.TempDir();
        TestSupport.Execute(config, runDir);
        string path = Path.Combine(runDir, "fused.safetensors");

        string said = VisionExport.Fused(runDir, path);

        Assert.Contains("fused into plain-14 without batch norm", said);
        var file = SafeTensors.Read(path);
        Assert.Equal(config.RunId, file.Metadata[VisionExport.FusedFromKey]);
        Assert.DoesNotContain(file.Tensors, t => t.Name.Contains("bn", StringComparison.Ordinal) || t.Name.Contains("running", StringComparison.Ordinal));
        Assert.Equal(13, file.Tensors.Count(t => t.Shape.Count == 4 && t.Shape[2] == 3 && t.Shape[3] == 3));
        Assert.Equal(13, file.Tensors.Count(t => t.Shape.Count == 4));

        // The plain net the metadata names, filled with the file's tensors, gives the trained RepVGG's logits (evaluation mode).
        var plain = RunConfig.From(ConfigValues.FromCanonical(file.Metadata[GptCheckpoint.ConfigKey], path));
        Assert.Equal(("plain", false), (plain.Vision!.Model.Family, plain.Vision.Model.Layers.BatchNorm));
        var set = new DataCache().Images(images);
        using var rebuilt = (plain.Vision.Model with { InChannels = 1, ImageSize = 12, Classes = set.Classes }).Build(plain.Connection);
        using (no_grad())
            foreach (var (name, tensor) in rebuilt.state_dict())
                tensor.copy_(TensorBytes.ToTensor(file.Find(name) ?? throw new Xunit.Sdk.XunitException($"{name} missing")));
        rebuilt.eval();
        using var branched = Deployment.Load(config, set, runDir, CPU);
        var (x, _) = ImageBatcher.InOrder(set, set.Test, 16, 16, CPU).First();
        using var _ = no_grad();
        double difference = (rebuilt.call(x) - branched.call(x)).abs().max().item<float>();
        Assert.True(difference < 1e-4, $"{difference}");
    }
}
