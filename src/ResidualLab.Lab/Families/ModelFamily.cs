using ResidualLab.Config;
using ResidualLab.Connections;
using ResidualLab.Data;
using ResidualLab.Training;
using static TorchSharp.torch;

namespace ResidualLab.Families;

/// <summary>
/// One kind of model the lab trains (the GPT, the CIFAR ResNet and its plain twin, the deep MLP, ...): everything the lab
/// knows of it, in one place. A family names the values of <c>model.name</c> it answers to, declares the config keys
/// only it reads (<see cref="Keys"/>; the schema is the shared keys plus every family's), reads and checks its settings
/// from a config (<see cref="Read"/>) and builds the task that trains it (<see cref="CreateTask"/>); the task states the
/// run's facts (FLOPs per step, the width it was built at). Nothing outside a family's files asks which family a run
/// is: a new family is its files plus one line in <see cref="ModelFamilies.All"/>.
/// </summary>
internal abstract class ModelFamily
{
    /// <summary>The values of <c>model.name</c> that select this family.</summary>
    public abstract IReadOnlyList<string> Names { get; }

    /// <summary>The config key of the model's depth (an axis of a study, not a group of it).</summary>
    public abstract string DepthKey { get; }

    /// <summary>The config keys only this family reads, with their defaults.</summary>
    public abstract IReadOnlyList<ConfigKey> Keys { get; }

    /// <summary>The model's settings from <paramref name="v"/>, checked; a <see cref="ConfigException"/> naming the key and
    /// where it was set when a value does not fit this family.</summary>
    /// <param name="name">The <c>model.name</c> given (one of <see cref="Names"/>).</param>
    public abstract ModelSettings Read(ConfigValues v, string name, ConnectionScheme connection, TrainSettings train);

    /// <summary>The task that trains a run of this family on its data, on <paramref name="device"/>.</summary>
    public abstract ITrainingTask CreateTask(RunConfig config, DataCache data, Device device);
}

/// <summary>A run's model as its family read it from the config: the family's own settings.</summary>
internal abstract record ModelSettings
{
    /// <summary>The family these settings belong to.</summary>
    public abstract ModelFamily Family { get; }

    /// <summary>The <c>model.name</c> of the run.</summary>
    public abstract string Name { get; }

    /// <summary>The model's depth as its family counts it (GPT blocks, layers with weights of a vision model).</summary>
    public abstract int Depth { get; }

    /// <summary>A run's short label: its model, <paramref name="connection"/> and <paramref name="seed"/> ("pre-norm L6 s1",
    /// "resnet-20 residual s1").</summary>
    public abstract string RunLabel(string connection, long seed);
}
