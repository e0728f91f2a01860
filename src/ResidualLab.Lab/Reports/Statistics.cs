namespace ResidualLab.Reports;

/// <summary>Mean, spread and a two-sided confidence interval of a small sample (Student's t).</summary>
internal sealed record SampleSummary(int Count, double Mean, double Std, double Low, double High)
{
    public double HalfWidth => (High - Low) / 2;
}

/// <summary>Welch's unequal-variance t-test of mean(a) - mean(b), with the 95% CI of the difference.</summary>
internal sealed record WelchTest(double Difference, double T, double DegreesOfFreedom, double P, double Low, double High)
{
    public bool Significant(double alpha = 0.05) => P < alpha;
}

/// <summary>
/// The statistics the scorecard needs, written out: Student's t distribution (CDF through the regularised
/// incomplete beta function, quantiles by bisection), confidence intervals and Welch's t-test.
/// </summary>
internal static class Statistics
{
    public static SampleSummary Summarise(IReadOnlyList<double> xs, double confidence = 0.95)
    {
        int n = xs.Count;
        if (n == 0) return new SampleSummary(0, double.NaN, double.NaN, double.NaN, double.NaN);
        double mean = xs.Average();
        if (n == 1) return new SampleSummary(1, mean, double.NaN, double.NaN, double.NaN);
        double std = SampleStd(xs);
        double half = StudentTQuantile(0.5 + confidence / 2, n - 1) * std / Math.Sqrt(n);
        return new SampleSummary(n, mean, std, mean - half, mean + half);
    }

    /// <summary>Sample standard deviation (n - 1 in the denominator); NaN for fewer than 2 values.</summary>
    public static double SampleStd(IReadOnlyList<double> xs)
    {
        if (xs.Count < 2) return double.NaN;
        double mean = xs.Average();
        return Math.Sqrt(xs.Sum(x => (x - mean) * (x - mean)) / (xs.Count - 1));
    }

    /// <summary>Welch's t-test of a against b (difference = mean(a) - mean(b)); needs at least 2 values on each side.</summary>
    public static WelchTest? Welch(IReadOnlyList<double> a, IReadOnlyList<double> b, double confidence = 0.95)
    {
        if (a.Count < 2 || b.Count < 2) return null;
        var sa = Summarise(a);
        var sb = Summarise(b);
        double va = sa.Std * sa.Std / a.Count, vb = sb.Std * sb.Std / b.Count;
        double diff = sa.Mean - sb.Mean;
        double se = Math.Sqrt(va + vb);
        if (se == 0) return new WelchTest(diff, diff == 0 ? 0 : Math.Sign(diff) * double.PositiveInfinity, a.Count + b.Count - 2,
            diff == 0 ? 1 : 0, diff, diff);
        double df = (va + vb) * (va + vb) / (va * va / (a.Count - 1) + vb * vb / (b.Count - 1));
        double t = diff / se;
        double p = 2 * (1 - StudentTCdf(Math.Abs(t), df));
        double half = StudentTQuantile(0.5 + confidence / 2, df) * se;
        return new WelchTest(diff, t, df, p, diff - half, diff + half);
    }

    /// <summary>P(T &lt;= t) for Student's t with <paramref name="df"/> degrees of freedom (any real df &gt; 0).</summary>
    public static double StudentTCdf(double t, double df)
    {
        if (double.IsPositiveInfinity(t)) return 1;
        if (double.IsNegativeInfinity(t)) return 0;
        double tail = 0.5 * RegularizedIncompleteBeta(df / 2, 0.5, df / (df + t * t));
        return t >= 0 ? 1 - tail : tail;
    }

    /// <summary>The t with P(T &lt;= t) = p.</summary>
    public static double StudentTQuantile(double p, double df)
    {
        if (p <= 0 || p >= 1) throw new ArgumentOutOfRangeException(nameof(p), "p must be in (0, 1)");
        if (p < 0.5) return -StudentTQuantile(1 - p, df);
        double lo = 0, hi = 1;
        while (StudentTCdf(hi, df) < p) hi *= 2;
        for (int i = 0; i < 200 && hi - lo > 1e-13 * Math.Max(1, hi); i++)
        {
            double mid = (lo + hi) / 2;
            if (StudentTCdf(mid, df) < p) lo = mid; else hi = mid;
        }
        return (lo + hi) / 2;
    }

    /// <summary>Least-squares slope of y against x.</summary>
    public static double Slope(IReadOnlyList<double> x, IReadOnlyList<double> y)
    {
        if (x.Count < 2 || x.Distinct().Count() < 2) return double.NaN;
        double mx = x.Average(), my = y.Average();
        double sxy = 0, sxx = 0;
        for (int i = 0; i < x.Count; i++) { sxy += (x[i] - mx) * (y[i] - my); sxx += (x[i] - mx) * (x[i] - mx); }
        return sxy / sxx;
    }

    public static double Median(IReadOnlyList<double> xs)
    {
        if (xs.Count == 0) return double.NaN;
        var sorted = xs.Order().ToArray();
        int m = sorted.Length / 2;
        return sorted.Length % 2 == 1 ? sorted[m] : (sorted[m - 1] + sorted[m]) / 2;
    }

    /// <summary>I_x(a, b), by the continued fraction (modified Lentz), using the symmetry for fast convergence.</summary>
    public static double RegularizedIncompleteBeta(double a, double b, double x)
    {
        if (x <= 0) return 0;
        if (x >= 1) return 1;
        double front = Math.Exp(LogGamma(a + b) - LogGamma(a) - LogGamma(b) + a * Math.Log(x) + b * Math.Log(1 - x));
        return x < (a + 1) / (a + b + 2)
            ? front * BetaContinuedFraction(a, b, x) / a
            : 1 - front * BetaContinuedFraction(b, a, 1 - x) / b;
    }

    static double BetaContinuedFraction(double a, double b, double x)
    {
        const double tiny = 1e-300, eps = 1e-15;
        double c = 1, d = 1 - (a + b) * x / (a + 1);
        d = 1 / (Math.Abs(d) < tiny ? tiny : d);
        double h = d;
        for (int m = 1; m <= 1000; m++)
        {
            int m2 = 2 * m;
            double aa = m * (b - m) * x / ((a + m2 - 1) * (a + m2));
            d = 1 + aa * d; d = 1 / (Math.Abs(d) < tiny ? tiny : d);
            c = 1 + aa / c; if (Math.Abs(c) < tiny) c = tiny;
            h *= d * c;
            aa = -(a + m) * (a + b + m) * x / ((a + m2) * (a + m2 + 1));
            d = 1 + aa * d; d = 1 / (Math.Abs(d) < tiny ? tiny : d);
            c = 1 + aa / c; if (Math.Abs(c) < tiny) c = tiny;
            double step = d * c;
            h *= step;
            if (Math.Abs(step - 1) < eps) break;
        }
        return h;
    }

    /// <summary>ln Γ(x) for x &gt; 0 (Lanczos, g = 7, n = 9; relative error below 1e-15).</summary>
    public static double LogGamma(double x)
    {
        if (x < 0.5) return Math.Log(Math.PI / Math.Abs(Math.Sin(Math.PI * x))) - LogGamma(1 - x);
        ReadOnlySpan<double> g =
        [
            0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059,
            12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7,
        ];
        x -= 1;
        double sum = g[0];
        for (int i = 1; i < g.Length; i++) sum += g[i] / (x + i);
        double t = x + 7.5;
        return 0.5 * Math.Log(2 * Math.PI) + (x + 0.5) * Math.Log(t) - t + Math.Log(sum);
    }
}
