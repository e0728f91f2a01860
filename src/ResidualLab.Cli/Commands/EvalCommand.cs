using System.CommandLine;
using System.Globalization;
using ResidualLab.Checkpoints;
using ResidualLab.Data;
using ResidualLab.Families;
using ResidualLab.Native;
using ResidualLab.Training.Tasks;
using static TorchSharp.torch;

namespace ResidualLab.Cli.Commands;

/// <summary>reslab eval --checkpoint FILE [--data FILE]: the val loss over the fixed evaluation batches, as training reports it.</summary>
internal static class EvalCommand
{
    public static Command Build()
    {
        var checkpoint = new Option<string>("--checkpoint") { Description = "a safetensors file written by 'reslab export'", Required = true };
        var data = new Option<string?>("--data") { Description = "the UTF-8 text to evaluate on, split as in training (default: the run's own data)" };
        var threads = new Option<int?>("--threads") { Description = "intra-op CPU threads (default: libtorch's choice)" };
        var command = new Command("eval", "Print a checkpoint's val loss on a text, over the same fixed batches as training.");
        command.Options.Add(checkpoint);
        command.Options.Add(data);
        command.Options.Add(threads);
        command.SetAction(parsed =>
        {
            TorchRuntime.SetThreads(parsed.GetValue(threads) ?? 0);
            var loaded = GptCheckpoint.Load(parsed.GetValue(checkpoint)!);
            using var model = loaded.Model;
            var gpt = loaded.Config.Settings<GptSettings>();
            var (m, t) = (gpt.Shape, loaded.Config.Train);
            var runData = gpt.Data;
            if (parsed.GetValue(data) is { } dataPath) runData = runData with { Path = dataPath };
            // The checkpoint's own tokenizer, so the text is encoded exactly as in training.
            var corpus = CorpusLoader.Load(runData, m.BlockSize, loaded.Tokenizer);
            model.eval();
            double loss = LanguageModelTask.FixedBatchLoss(model, corpus.Val, t.BatchSize, t.EvalBatches, CPU);
            string split = runData.Path.Length > 0 || runData.Corpus != GutenbergCorpus.Name
                ? $"the validation split ({runData.ValFraction:0.###} of the text, before the last {runData.TestFraction:0.###}) of" : "the validation books of";
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"val loss {loss:0.000000} ({t.EvalBatches} fixed batches of {t.BatchSize} x {m.BlockSize} {loaded.Tokenizer.Spec} tokens from {split} '{corpus.Source}')"));
            return 0;
        });
        return command;
    }
}
