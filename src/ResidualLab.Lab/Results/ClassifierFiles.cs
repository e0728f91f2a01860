using System.Text.Json;
using ResidualLab.Config;
using ResidualLab.Training.Tasks;
using ResidualLab.Families;

namespace ResidualLab.Results;

/// <summary>Writes a classifier run's classifier.json: final errors, the evaluation curve, and the gradient
/// norm of every weight layer at initialisation and averaged over training.</summary>
internal static class ClassifierFiles
{
    public static void Write(string runDir, RunConfig config, int trainImages, ClassifierResult result)
    {
        var v = config.Settings<VisionSettings>();
        var json = JsonSerializer.Serialize(new
        {
            run_id = config.RunId,
            label = config.Label,
            family = v.Model.Family,
            depth = v.Model.Depth,
            width = v.Model.Width,
            connection = config.Connection.Name,
            images = v.Images,
            train_images = trainImages,
            status = result.Run.Status.ToString().ToLowerInvariant(),
            parameters = result.Run.Parameters,
            final = result.Final,
            curve = result.Curve,
            grad_norms = new
            {
                layers = result.AtInit.Layers,
                at_init = result.AtInit.Norms,
                during_training = result.DuringTraining.Norms,
                first_to_last_at_init = result.AtInit.FirstToLast,
                first_to_last_during_training = result.DuringTraining.FirstToLast,
            },
        }, ResultJson.SnakeCaseDocument);
        StorageException.CreateFolder(runDir);
        AtomicFile.WriteText(Path.Combine(runDir, "classifier.json"), json);
    }
}
