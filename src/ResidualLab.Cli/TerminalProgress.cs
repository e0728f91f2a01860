using System.Diagnostics;
using ResidualLab.Training;
using Spectre.Console;

namespace ResidualLab.Cli;

/// <summary>
/// Live progress of training runs: a Spectre.Console progress bar per run in a terminal (step, loss,
/// tokens/s or images/s, ETA); plain lines at each evaluation when the output is redirected (CI, logs).
/// </summary>
internal sealed class TerminalProgress
{
    readonly ProgressContext? _context;

    TerminalProgress(ProgressContext? context) => _context = context;

    public static T Track<T>(Func<TerminalProgress, T> work)
    {
        if (Console.IsOutputRedirected || !AnsiConsole.Profile.Capabilities.Interactive)
            return work(new TerminalProgress(null));
        T result = default!;
        AnsiConsole.Progress()
            .AutoClear(false)
            .HideCompleted(false)
            .Columns(new TaskDescriptionColumn { Alignment = Justify.Left }, new ProgressBarColumn(),
                new PercentageColumn(), new RemainingTimeColumn(), new SpinnerColumn())
            .Start(ctx => result = work(new TerminalProgress(ctx)));
        return result;
    }

    public ITrainingObserver For(string label) => new RunProgress(label, _context);

    sealed class RunProgress(string label, ProgressContext? context) : ITrainingObserver
    {
        ProgressTask? _task;
        int _max;
        double _loss;
        double _itemsPerSecond;
        string _unit = "";
        double? _val;
        readonly Stopwatch _clock = Stopwatch.StartNew();

        public void OnStart(int maxIters)
        {
            _max = maxIters;
            _task = context?.AddTask(Markup.Escape(label), maxValue: maxIters);
        }

        public void OnStep(StepMetrics s)
        {
            _loss = s.Loss;
            _itemsPerSecond = _itemsPerSecond == 0 ? s.ItemsPerSecond : 0.9 * _itemsPerSecond + 0.1 * s.ItemsPerSecond;
            _unit = s.Unit;
            if (_task is null) return;
            _task.Value = s.Step + 1;
            _task.Description = Markup.Escape($"{label}  step {s.Step + 1}/{_max}  loss {_loss:0.000}{(_val is { } v ? $"  val {v:0.000}" : "")}  {Throughput}");
        }

        public void OnEval(EvalMetrics e)
        {
            _val = e.ValLoss;
            if (_task is not null) return;
            double elapsed = _clock.Elapsed.TotalSeconds;
            double eta = e.Step > 0 ? elapsed / e.Step * (_max - e.Step) : 0;
            Console.WriteLine($"{label}  step {e.Step}/{_max}  loss {_loss:0.000}  train {e.TrainLoss:0.000}  val {e.ValLoss:0.000}  {Throughput}  ETA {TimeSpan.FromSeconds(eta):m\\:ss}");
        }

        string Throughput => $"{_itemsPerSecond / 1000:0.0}k {_unit}/s";

        public void OnEnd(TrainResult result)
        {
            if (_task is null) return;
            _task.Value = _task.MaxValue;
            _task.StopTask();
        }
    }
}
