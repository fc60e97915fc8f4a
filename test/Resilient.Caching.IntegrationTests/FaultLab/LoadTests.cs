using System.Diagnostics;
using Microsoft.Extensions.Caching.Distributed;
using Resilient.Caching.IntegrationTests.Infrastructure;
using Xunit;

namespace Resilient.Caching.IntegrationTests.FaultLab;

/// <summary>Runs alone (after the parallel tests): it measures the thread pool and the process's memory.</summary>
[CollectionDefinition(nameof(RunsAlone), DisableParallelization = true)]
public sealed class RunsAlone;

/// <summary>
/// Scenario 8: a busy application during an outage. 256 concurrent callers, half synchronous, mixed reads and
/// writes, for five seconds while Redis is down: every call completes within the operation timeout, the thread pool
/// keeps up (a 50 ms timer on it fires on time), memory does not grow, and Redis is used again afterwards.
/// </summary>
[Collection(nameof(RunsAlone))]
public sealed class LoadTests
{
    private const int Callers = 256;
    private static readonly TimeSpan LoadFor = TimeSpan.FromSeconds(5);
    private static readonly TimeSpan TimerPeriod = TimeSpan.FromMilliseconds(50);
    private static readonly TimeSpan TimerLatenessBound = TimeSpan.FromMilliseconds(500);
    private const long MemoryGrowthBound = 8 * 1024 * 1024;

    [Fact]
    public async Task Many_concurrent_callers_during_an_outage()
    {
        await using var server = await RedisServer.StartNewAsync(cancellationToken: Lab.Ct);
        using var lab = new LabCache(server.ConnectionString);
        await lab.WarmUpAsync();
        server.Kill();

        // One short round first, so one-time allocations (window state, log records, the reconnect) are in the baseline.
        await RunCallersAsync(lab.Cache, TimeSpan.FromSeconds(0.5));
        var memoryBefore = GC.GetTotalMemory(forceFullCollection: true);

        using var timerStop = new CancellationTokenSource();
        var timer = MeasureTimerAsync(timerStop.Token);
        var load = Stopwatch.StartNew();
        var results = await RunCallersAsync(lab.Cache, LoadFor);
        var loadTook = load.Elapsed;
        await timerStop.CancelAsync();
        var (ticks, lateness, pending) = await timer;

        var memoryAfter = GC.GetTotalMemory(forceFullCollection: true);
        var calls = results.Sum(r => r.Calls);
        var slowest = results.Max(r => r.Slowest);
        var slow = results.Sum(r => r.Slow);
        Lab.Report(
            $"{Callers} callers for {LoadFor.TotalSeconds:0} s with Redis down: {calls} calls ({calls / LoadFor.TotalSeconds:0}/s), all done after {loadTook.TotalMilliseconds:0} ms, " +
            $"slowest {slowest.TotalMilliseconds:0} ms, {slow} waited > {Lab.SlowCall.TotalMilliseconds:0} ms, {results.Sum(r => r.Errors)} exceptions; " +
            $"50 ms timer: {ticks} ticks, latest {lateness.TotalMilliseconds:0} ms late, thread-pool queue max {pending}; " +
            $"memory {memoryBefore / 1024} KiB -> {memoryAfter / 1024} KiB ({(memoryAfter - memoryBefore) / 1024:+#;-#;0} KiB); {lab.Availability.SkippedOperations} skipped");

        Assert.Equal(0, results.Sum(r => r.Errors));
        Assert.True(loadTook <= LoadFor + Lab.CallBound, $"the callers needed {loadTook.TotalMilliseconds:0} ms to finish");
        Assert.True(slowest <= Lab.CallBound, $"a call took {slowest.TotalMilliseconds:0} ms");

        // Only the probe of each window may wait (plus the calls already under way when Redis went away).
        var windows = (int)(LoadFor / Lab.Window) + 2;
        Assert.True(slow <= windows, $"{slow} calls waited; at most one per window ({windows}) may");
        Assert.True(ticks >= LoadFor / TimerPeriod / 2, $"the 50 ms timer fired only {ticks} times in {LoadFor.TotalSeconds:0} s");
        Assert.True(lateness <= TimerLatenessBound, $"the 50 ms timer fired {lateness.TotalMilliseconds:0} ms late: the thread pool is starved");
        Assert.True(memoryAfter - memoryBefore <= MemoryGrowthBound, $"memory grew by {(memoryAfter - memoryBefore) / 1024} KiB");

        // Redis comes back: used again.
        await server.RestartAsync(Lab.Ct);
        await lab.UsedAgainAsync(async: true);
    }

    internal static async Task<CallerResult[]> RunCallersAsync(IDistributedCache cache, TimeSpan duration)
    {
        var deadline = Stopwatch.StartNew();
        var callers = Enumerable.Range(0, Callers).Select(id => Task.Run(async () =>
        {
            var sync = id % 2 == 1;
            var result = new CallerResult();
            var entry = new DistributedCacheEntryOptions();
            var value = Lab.Bytes($"value-{id}");
            for (var i = 0; deadline.Elapsed < duration && i < 100_000; i++)
            {
                var key = $"lab:{id}:{i % 8}";
                var call = Stopwatch.StartNew();
                try
                {
                    switch (i % 2, sync)
                    {
                        case (0, true):
                            cache.Set(key, value, entry);
                            break;
                        case (0, false):
                            await cache.SetAsync(key, value, entry, Lab.Ct);
                            break;
                        case (_, true):
                            _ = cache.Get(key);
                            break;
                        default:
                            _ = await cache.GetAsync(key, Lab.Ct);
                            break;
                    }
                }
                catch (Exception)
                {
                    result.Errors++;
                }

                result.Record(call.Elapsed);

                // Requests arrive every few milliseconds per caller; without the pause the callers would only measure the CPU.
                await Task.Delay(2 + (i % 5), Lab.Ct);
            }

            return result;
        })).ToArray();
        return await Task.WhenAll(callers).WaitAsync(duration + Lab.CallBound + TimeSpan.FromSeconds(10), Lab.Ct);
    }

    /// <summary>A timer on the thread pool: how often it fired, how late it fired at worst, the deepest queue seen.</summary>
    private static async Task<(int Ticks, TimeSpan Lateness, long Pending)> MeasureTimerAsync(CancellationToken stop)
    {
        var ticks = 0;
        var lateness = TimeSpan.Zero;
        long pending = 0;
        try
        {
            while (!stop.IsCancellationRequested)
            {
                var tick = Stopwatch.StartNew();
                await Task.Delay(TimerPeriod, stop);
                var late = tick.Elapsed - TimerPeriod;
                lateness = late > lateness ? late : lateness;
                pending = Math.Max(pending, ThreadPool.PendingWorkItemCount);
                ticks++;
            }
        }
        catch (OperationCanceledException)
        {
        }

        return (ticks, lateness, pending);
    }

    internal sealed class CallerResult
    {
        public int Calls { get; private set; }

        public int Errors { get; set; }

        public int Slow { get; private set; }

        public TimeSpan Slowest { get; private set; }

        public void Record(TimeSpan elapsed)
        {
            Calls++;
            Slow += elapsed > Lab.SlowCall ? 1 : 0;
            Slowest = elapsed > Slowest ? elapsed : Slowest;
        }
    }
}
