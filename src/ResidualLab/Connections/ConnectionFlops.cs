namespace ResidualLab.Connections;

/// <summary>
/// How <see cref="ConnectionScheme.ForwardFlops"/> counts a connection's own work, per token (one position of
/// one sequence) and forward only: one multiply or one add is one FLOP, so a multiply-add is two and a
/// weighted sum of k vectors of width d is 2 k d; exp, tanh, sigmoid, sqrt and a division count one per
/// element. The model's norm (a LayerNorm in the GPT) counts 7 d: mean, centre, square, sum, scale, gain,
/// shift; an RMSNorm 4 d: square, sum, scale, gain. Index operations, copies and broadcasts (expanding
/// the stream into n copies, selecting a stream) are free.
/// </summary>
internal static class ConnectionFlops
{
    /// <summary>A LayerNorm over <paramref name="d"/> features.</summary>
    public static double LayerNorm(int d) => 7.0 * d;

    /// <summary>An RMSNorm over <paramref name="d"/> features.</summary>
    public static double RmsNorm(int d) => 4.0 * d;

    /// <summary>A matrix product of one <paramref name="inputs"/>-vector with an inputs x <paramref name="outputs"/> matrix.</summary>
    public static double MatVec(long inputs, long outputs) => 2.0 * inputs * outputs;

    /// <summary>sum_j w_j x_j over <paramref name="count"/> vectors of width <paramref name="d"/>.</summary>
    public static double WeightedSum(long count, int d) => 2.0 * count * d;

    /// <summary>
    /// The n-stream depth step H' = D [H; y] of <see cref="Streams.Write"/>: D [n, n + 1] times [n + 1, d].
    /// </summary>
    public static double StreamWrite(int n, int d) => 2.0 * n * (n + 1) * d;

    /// <summary>Reducing n streams to one by their sum: (n - 1) d adds.</summary>
    public static double StreamSum(int n, int d) => (double)(n - 1) * d;
}
