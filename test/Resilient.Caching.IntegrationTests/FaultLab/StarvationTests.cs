using System.Diagnostics;
using System.Globalization;
using Microsoft.Extensions.Caching.Distributed;
using Resilient.Caching.IntegrationTests.Infrastructure;
using Xunit;

namespace Resilient.Caching.IntegrationTests.FaultLab;

/// <summary>
/// The application's own thread-pool starvation is not an outage. A healthy Redis, a 1 s operation timeout, and
/// eight request loops on the thread pool of which one request in five calls the synchronous API (sync over async
/// in the application, blocking a pool thread while it waits): replies are read on the client's own threads, so the
/// cache keeps hitting and no window opens. Runs alone: it starves the process's thread pool on purpose.
/// </summary>
[Collection(nameof(RunsAlone))]
public sealed class StarvationTests
{
    private const int Loops = 8;
    private static readonly TimeSpan RunFor = TimeSpan.FromSeconds(8);

    [Fact]
    public async Task Sync_calls_starving_the_pool_do_not_switch_the_cache_off()
    {
        var (summary, hits, total, errors, windows) = await RunAsync(dedicatedThreads: true);
        Assert.Equal(0, errors);
        Assert.Equal(0, windows);
        Assert.True(hits >= total * 0.95, summary);
    }

    /// <summary>
    /// The control, as a measurement: the same workload with the client reading replies on the thread pool. The
    /// switch is process-wide, so it is turned back on afterwards; run with <c>FAULTLAB_BASELINE=1</c>.
    /// </summary>
    [Fact]
    public async Task Control_without_dedicated_threads()
    {
        Lab.SkipUnlessMeasuring();
        StackExchange.Redis.ConnectionMultiplexer.SetFeatureFlag(Connection.RedisConnection.DedicatedThreadsFlag, false);
        try
        {
            var (summary, _, _, _, _) = await RunAsync(dedicatedThreads: false);
            Lab.Report("control: " + summary);
        }
        finally
        {
            StackExchange.Redis.ConnectionMultiplexer.SetFeatureFlag(Connection.RedisConnection.DedicatedThreadsFlag, true);
        }
    }

    private static async Task<(string Summary, long Hits, long Total, long Errors, long Windows)> RunAsync(bool dedicatedThreads)
    {
        await using var server = await RedisServer.StartNewAsync(cancellationToken: Lab.Ct);
        using var lab = new LabCache(server.ConnectionString, o =>
        {
            o.OperationTimeout = TimeSpan.FromSeconds(1);
            o.ConnectTimeout = TimeSpan.FromSeconds(1);
            o.UnavailableWindow = TimeSpan.FromSeconds(2);
            o.DedicatedThreads = dedicatedThreads;
        });
        await lab.WarmUpAsync();
        var cache = lab.Cache;
        for (var i = 0; i < 16; i++)
        {
            await cache.SetStringAsync($"starve:{i}", "value", Lab.Ct);
        }

        long hits = 0, misses = 0, errors = 0;
        var clock = Stopwatch.StartNew();
        var loops = Enumerable.Range(0, Loops).Select(loop => Task.Run(async () =>
        {
            for (var n = 0; clock.Elapsed < RunFor && n < 200_000; n++)
            {
                try
                {
                    // One request in five blocks its pool thread on the synchronous API.
                    var value = n % 5 == 0 ? cache.GetString($"starve:{n % 16}") : await cache.GetStringAsync($"starve:{n % 16}", Lab.Ct);
                    Interlocked.Increment(ref value is null ? ref misses : ref hits);
                }
                catch (Exception)
                {
                    Interlocked.Increment(ref errors);
                }
            }
        })).ToArray();
        await Task.WhenAll(loops);

        var total = hits + misses + errors;
        var summary = string.Create(CultureInfo.InvariantCulture,
            $"{total} requests in {clock.Elapsed.TotalSeconds:0.0} s: {hits} hits ({100.0 * hits / Math.Max(1, total):0.0} %), {misses} misses, {errors} errors, " +
            $"{lab.Availability.Outages} windows, pool threads {ThreadPool.ThreadCount}");
        Lab.Report(summary + "\n" + lab.DescribeLogs());
        TestContext.Current.SendDiagnosticMessage(summary);
        return (summary, hits, total, errors, lab.Availability.Outages);
    }
}
