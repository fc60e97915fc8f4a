using Microsoft.Extensions.Caching.Distributed;

namespace Resilient.Caching.IntegrationTests.FaultLab;

/// <summary>What the stock provider did in one scenario (recorded, never asserted: it is not ours to fix).</summary>
internal sealed record BaselineReport(
    string Name,
    bool Async,
    int CallsDuringFault,
    int ErrorsDuringFault,
    string ErrorTypes,
    TimeSpan FirstCallAfterFault,
    TimeSpan MedianCallDuringFault,
    TimeSpan MaxCallDuringFault,
    TimeSpan? FirstSuccessAfterHeal,
    TimeSpan ObservedAfterHeal,
    int ErrorsAfterHeal,
    int Calls)
{
    public override string ToString() =>
        $"STOCK {Name} ({(Async ? "async" : "sync")}): during the fault {CallsDuringFault} calls, {ErrorsDuringFault} threw ({ErrorTypes}); " +
        $"first call {FirstCallAfterFault.TotalMilliseconds:0} ms, median {MedianCallDuringFault.TotalMilliseconds:0} ms, max {MaxCallDuringFault.TotalMilliseconds:0} ms; " +
        $"after the heal: {(FirstSuccessAfterHeal is { } ok ? $"first success after {ok.TotalMilliseconds:0} ms" : $"no success within {ObservedAfterHeal.TotalSeconds:0} s")}, {ErrorsAfterHeal} more errors";
}

/// <summary>
/// Runs the same fault against Microsoft's stock <c>RedisCache</c> (its defaults: 5 s timeouts, a backlog queue,
/// exceptions to the caller) with the lab's traffic, and records what the callers saw.
/// </summary>
internal static class Baseline
{
    public static async Task<BaselineReport> MeasureAsync(
        IDistributedCache stock, bool async, Fault fault, TimeSpan faultFor, TimeSpan observeAfterHeal, bool writesOnly = false, int workers = 2)
    {
        await using var traffic = Traffic.Start(stock, async, workers, writesOnly, limit: TimeSpan.FromMinutes(2));

        // The stock provider connects synchronously on its first call; give it time.
        await traffic.WaitForAsync(s => s.Outcome != CallOutcome.Error, TimeSpan.Zero, TimeSpan.FromSeconds(15));
        var faultAt = traffic.Now;
        await fault.Inject();
        await Task.Delay(faultFor, Lab.Ct);
        await fault.Heal();
        var healAt = traffic.Now;

        // A call that started after the heal and did not throw: Redis answered (the stock provider never swallows).
        var success = await traffic.WaitForAsync(s => s.Outcome != CallOutcome.Error, healAt, observeAfterHeal);
        await traffic.StopAsync();

        // Calls that overlapped the fault (a stock call can last longer than the fault itself).
        var during = traffic.Samples.Where(s => s.End > faultAt && s.At < healAt).ToList();
        var errors = during.Where(s => s.Error is not null).ToList();
        var ordered = during.Select(s => s.Elapsed).Order().ToList();
        var report = new BaselineReport(
            fault.Name,
            async,
            during.Count,
            errors.Count,
            string.Join(", ", errors.GroupBy(s => s.Error!.GetType().Name).Select(g => $"{g.Count()}× {g.Key}")),
            during.Count == 0 ? TimeSpan.Zero : during[0].Elapsed,
            ordered.Count == 0 ? TimeSpan.Zero : ordered[ordered.Count / 2],
            ordered.Count == 0 ? TimeSpan.Zero : ordered[^1],
            success is null ? null : success.End - healAt,
            observeAfterHeal,
            traffic.Samples.Count(s => s.At >= healAt && s.Error is not null && (success is null || s.At < success.At)),
            traffic.Samples.Count);
        Lab.Report(report.ToString());
        Lab.Report(string.Join('\n', errors.Take(3).Select(s => s.ToString())));
        return report;
    }
}
