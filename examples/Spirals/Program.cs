// Two interleaved spirals, classified by a deep MLP of our own whose residual connections come from
// ResidualLab: the scheme is chosen on the command line.
//   dotnet run -- mhc n=4 --steps 300 --depth 8
using ResidualLab.Connections;
using ResidualLab;
using ResidualLab.Native;
using TorchSharp;
using static TorchSharp.torch;

var (schemeName, options, steps, depth) = Arguments.Parse(args);
TorchRuntime.EnsureLoaded();   // before the first torch call: makes libtorch load on hosts such as Debian 12
set_num_threads(1);            // a model this small gains nothing from more threads
manual_seed(1);

const int width = 32;
ConnectionScheme scheme;
try { scheme = ConnectionCatalog.Create(schemeName, options); }
catch (ArgumentException ex)
{
    Console.Error.WriteLine($"Spirals: error: {ex.Message}");
    return 2;
}
var model = new SpiralNet(scheme, width, depth);
var optimizer = optim.AdamW(model.parameters(), lr: 3e-3);
var (x, y) = SpiralData.Make(512, seed: 1);
var (xTest, yTest) = SpiralData.Make(512, seed: 2);

for (int step = 1; step <= steps; step++)
{
    using var _ = NewDisposeScope();
    optimizer.zero_grad();
    var loss = nn.functional.cross_entropy(model.call(x), y);
    loss.backward();
    optimizer.step();
    if (step % Math.Max(1, steps / 5) == 0 || step == steps)
        Console.WriteLine($"step {step,4}  loss {loss.item<float>():F4}  test accuracy {Accuracy(model, xTest, yTest):P1}");
}

using (NewDisposeScope())
{
    var streams = model.Stack.Trace(model.Embed(xTest));
    Console.WriteLine($"{schemeName}: {model.Stack.StreamCount} stream(s), {depth} sublayers");
    if (model.Stack.StreamCount > 1)
        Console.WriteLine($"stream similarity after the last sublayer: {StreamSimilarity.Mean(streams[^1]):F4}");
    if (model.Stack.ResidualGain(model.Embed(xTest)) is { } gain)
        Console.WriteLine($"Amax gain of the residual mixing: forward {gain.Forward:F4}, backward {gain.Backward:F4}");
}
return 0;

static double Accuracy(SpiralNet model, Tensor x, Tensor y)
{
    using var _ = no_grad();
    return model.call(x).argmax(1).eq(y).to(ScalarType.Float32).mean().item<float>();
}

/// <summary>Our model: 2-d points to a width-32 stream, `depth` two-layer MLP sublayers on it, two logits.</summary>
sealed class SpiralNet : nn.Module<Tensor, Tensor>
{
    readonly TorchSharp.Modules.Linear embed;
    readonly ResidualStack stack;
    readonly TorchSharp.Modules.Linear head;

    public SpiralNet(ConnectionScheme scheme, int width, int depth) : base(nameof(SpiralNet))
    {
        embed = nn.Linear(2, width);
        var sublayers = Enumerable.Range(0, depth).Select(_ => (nn.Module<Tensor, Tensor>)new Mlp(width)).ToList();
        stack = new ResidualStack(scheme, width, sublayers);
        head = nn.Linear(width, 2);
        RegisterComponents();
    }

    public ResidualStack Stack => stack;

    public Tensor Embed(Tensor x) => embed.call(x);

    public override Tensor forward(Tensor x) => head.call(stack.call(embed.call(x)));
}

/// <summary>One sublayer F: d to 4d, GELU, back to d.</summary>
sealed class Mlp : nn.Module<Tensor, Tensor>
{
    readonly TorchSharp.Modules.Linear up, down;

    public Mlp(int width) : base(nameof(Mlp))
    {
        up = nn.Linear(width, 4 * width);
        down = nn.Linear(4 * width, width);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x) => down.call(nn.functional.gelu(up.call(x)));
}

static class SpiralData
{
    /// <summary>n points on two spirals (labels 0 and 1), with a little noise.</summary>
    public static (Tensor X, Tensor Y) Make(int n, int seed)
    {
        var g = new Generator((ulong)seed);
        var label = randint(0, 2, [n], generator: g);
        var t = rand([n], generator: g) * 3 * Math.PI + 0.5;
        var angle = t + label.to(ScalarType.Float32) * Math.PI;
        var points = stack([t * cos(angle), t * sin(angle)], 1) / (3 * Math.PI) + 0.02 * randn([n, 2], generator: g);
        return (points, label);
    }
}

static class Arguments
{
    const string Usage = "usage: Spirals SCHEME [KEY=VALUE ...] [--steps N] [--depth L]   (e.g. Spirals mhc n=4 --steps 300)";

    public static (string Scheme, Dictionary<string, object> Options, int Steps, int Depth) Parse(string[] args)
    {
        string scheme = "pre-norm";
        var options = new Dictionary<string, object>();
        int steps = 300, depth = 8;
        for (int i = 0; i < args.Length; i++)
        {
            if (args[i] is "--steps" or "--depth" && i + 1 < args.Length && int.TryParse(args[i + 1], out int value) && value > 0)
            {
                if (args[i] == "--steps") steps = value; else depth = value;
                i++;
            }
            else if (args[i].Split('=', 2) is [var key, var text] && !key.StartsWith('-'))
                options[key] = long.TryParse(text, out long l) ? l
                    : double.TryParse(text, System.Globalization.CultureInfo.InvariantCulture, out double d) ? d
                    : bool.TryParse(text, out bool b) ? b : text;
            else if (!args[i].StartsWith('-') && i == 0)
                scheme = args[i];
            else
            {
                Console.Error.WriteLine($"Spirals: error: unexpected argument '{args[i]}'; {Usage}");
                Environment.Exit(2);
            }
        }
        return (scheme, options, steps, depth);
    }
}
