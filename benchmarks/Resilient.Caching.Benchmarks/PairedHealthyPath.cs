using System.Diagnostics;
using System.Globalization;
using System.Text;
using Resilient.Caching.Benchmarks.Shared;

namespace Resilient.Caching.Benchmarks;

/// <summary>
/// <c>--paired</c>: the healthy-path ratio measured so that machine noise cancels out. On 2 shared cores a loopback
/// Redis call varies by 10–15% between BenchmarkDotNet iterations and processes, far more than the 3% target.
/// Here both providers run in one process against one redis-server (the <see cref="HealthyPathBenchmarks"/>
/// set-up and methods), in alternating blocks (stock then ours, ours then stock, …); each round yields one ratio
/// ours / stock from two adjacent blocks, and the report gives the median ratio with its 95%
/// confidence interval over the rounds, and the bytes allocated per call (all threads) for each provider.
/// </summary>
internal static class PairedHealthyPath
{
    public static async Task<int> RunAsync(string[] args)
    {
        var rounds = Option(args, "--rounds", 100);
        var calls = Option(args, "--calls", 400);
        var output = OptionText(args, "--out");
        var benchmarks = new HealthyPathBenchmarks();
        benchmarks.Setup();
        var rows = new List<string>();
        try
        {
            foreach (var (category, stock, ours) in Pairs(benchmarks))
            {
                // Warm both (JIT tiering, connection buffers) before anything is measured.
                await BlockAsync(stock, calls);
                await BlockAsync(ours, calls);
                await BlockAsync(stock, calls);
                await BlockAsync(ours, calls);

                var ratios = new List<double>();
                var stockNs = new List<double>();
                var oursNs = new List<double>();
                var stockBytes = new List<double>();
                var oursBytes = new List<double>();
                for (var round = 0; round < rounds; round++)
                {
                    var stockFirst = round % 2 == 0;
                    var first = await BlockAsync(stockFirst ? stock : ours, calls);
                    var second = await BlockAsync(stockFirst ? ours : stock, calls);
                    var (s, o) = stockFirst ? (first, second) : (second, first);
                    stockNs.Add(s.NsPerCall);
                    oursNs.Add(o.NsPerCall);
                    stockBytes.Add(s.BytesPerCall);
                    oursBytes.Add(o.BytesPerCall);
                    ratios.Add(o.NsPerCall / s.NsPerCall);
                }

                var row = string.Create(CultureInfo.InvariantCulture,
                    $"| {category} | {Median(stockNs) / 1000:0.0} | {Median(oursNs) / 1000:0.0} | **{Median(ratios):0.000}** | {MedianLowerBound(ratios):0.000} – {MedianUpperBound(ratios):0.000} | {Median(stockBytes):0} | {Median(oursBytes):0} | {Median(oursBytes) - Median(stockBytes):+0;-0;0} |");
                rows.Add(row);
                Console.WriteLine(row);
            }
        }
        finally
        {
            benchmarks.Cleanup();
        }

        var report = new StringBuilder();
        report.AppendLine("# HealthyPathPaired");
        report.AppendLine();
        report.AppendLine(MachineInfo.Summary("./benchmarks/run-benchmarks.sh " + string.Join(' ', args)));
        report.AppendLine();
        report.AppendLine(string.Create(CultureInfo.InvariantCulture,
            $"Both providers in one process against one redis-server on loopback, 1 KB values, {rounds} rounds of two adjacent blocks of {calls} sequential calls (stock first in even rounds, ours first in odd ones). µs per call: median over the rounds; ratio: ours / stock per round, median with its distribution-free 95% confidence interval (order statistics n/2 ± 0.98√n); bytes: allocated per call on all threads (GC.GetTotalAllocatedBytes(precise: true)), median over the rounds."));
        report.AppendLine();
        report.AppendLine("| category | stock µs/call | ours µs/call | ratio (median) | ratio 95% CI | stock B/call | ours B/call | extra B/call |");
        report.AppendLine("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
        foreach (var row in rows)
        {
            report.AppendLine(row);
        }

        if (output is not null)
        {
            await File.WriteAllTextAsync(output, report.ToString());
            Console.WriteLine($"wrote {output}");
        }

        return 0;
    }

    private static (string Category, Func<ValueTask> Stock, Func<ValueTask> Ours)[] Pairs(HealthyPathBenchmarks b) =>
    [
        ("GetHit", () => Sync(b.GetHit_Stock()), () => Sync(b.GetHit_Resilient())),
        ("GetMiss", () => Sync(b.GetMiss_Stock()), () => Sync(b.GetMiss_Resilient())),
        ("Set", () => Sync(b.Set_Stock), () => Sync(b.Set_Resilient)),
        ("Refresh", () => Sync(b.Refresh_Stock), () => Sync(b.Refresh_Resilient)),
        ("Remove", () => Sync(b.Remove_Stock), () => Sync(b.Remove_Resilient)),
        ("GetHitAsync", () => new(b.GetHitAsync_Stock()), () => new(b.GetHitAsync_Resilient())),
        ("GetHitAsyncToken", () => new(b.GetHitAsyncToken_Stock()), () => new(b.GetHitAsyncToken_Resilient())),
        ("GetMissAsync", () => new(b.GetMissAsync_Stock()), () => new(b.GetMissAsync_Resilient())),
        ("SetAsync", () => new(b.SetAsync_Stock()), () => new(b.SetAsync_Resilient())),
        ("RefreshAsync", () => new(b.RefreshAsync_Stock()), () => new(b.RefreshAsync_Resilient())),
        ("RemoveAsync", () => new(b.RemoveAsync_Stock()), () => new(b.RemoveAsync_Resilient())),
        ("TryGetHit", () => Sync(b.TryGetHit_Stock()), () => Sync(b.TryGetHit_Resilient())),
        ("TryGetHitAsync", () => Discard(b.TryGetHitAsync_Stock()), () => Discard(b.TryGetHitAsync_Resilient())),
        ("SetSequence", () => Sync(b.SetSequence_Stock), () => Sync(b.SetSequence_Resilient)),
        ("SetSequenceAsync", b.SetSequenceAsync_Stock, b.SetSequenceAsync_Resilient),
    ];

    private static ValueTask Sync<T>(T _) => default;

    private static ValueTask Sync(Action call)
    {
        call();
        return default;
    }

    private static async ValueTask Discard<T>(ValueTask<T> call) => await call;

    private static async Task<(double NsPerCall, double BytesPerCall)> BlockAsync(Func<ValueTask> call, int calls)
    {
        var bytes = GC.GetTotalAllocatedBytes(precise: true);
        var start = Stopwatch.GetTimestamp();
        for (var i = 0; i < calls; i++)
        {
            await call();
        }

        var elapsed = Stopwatch.GetElapsedTime(start);
        var allocated = GC.GetTotalAllocatedBytes(precise: true) - bytes;
        return (elapsed.TotalNanoseconds / calls, (double)allocated / calls);
    }

    private static double Median(List<double> values) => Quantile(values, 0.5);

    // Distribution-free 95% confidence interval of a median: the order statistics n/2 ∓ 0.98·√n.
    private static double MedianLowerBound(List<double> values) =>
        values.Order().ElementAt(Math.Max(0, (int)Math.Floor((values.Count / 2.0) - (0.98 * Math.Sqrt(values.Count)))));

    private static double MedianUpperBound(List<double> values) =>
        values.Order().ElementAt(Math.Min(values.Count - 1, (int)Math.Ceiling((values.Count / 2.0) + (0.98 * Math.Sqrt(values.Count)))));

    private static double Quantile(List<double> values, double q)
    {
        var sorted = values.Order().ToArray();
        var position = q * (sorted.Length - 1);
        var lower = (int)Math.Floor(position);
        var upper = Math.Min(lower + 1, sorted.Length - 1);
        return sorted[lower] + ((sorted[upper] - sorted[lower]) * (position - lower));
    }

    private static int Option(string[] args, string name, int fallback) =>
        OptionText(args, name) is { } text ? int.Parse(text, CultureInfo.InvariantCulture) : fallback;

    private static string? OptionText(string[] args, string name)
    {
        var index = Array.IndexOf(args, name);
        return index >= 0 && index + 1 < args.Length ? args[index + 1] : null;
    }
}
