using System.Globalization;
using Microsoft.Extensions.Caching.Distributed;
using Resilient.Caching.IntegrationTests.Infrastructure;
using Resilient.Caching.IntegrationTests.Topologies;
using Xunit;

namespace Resilient.Caching.IntegrationTests.FaultLab;

/// <summary>
/// A 2-second restart: Redis, persisting to its append-only file, is killed (SIGKILL) under a light load of readers
/// over 50 stored keys and started again 2 s later with its data. With the library's defaults (5 s timeouts, 30 s
/// window) the outage must not cost the window: the connection made again in the background starts the check early,
/// so reads hit again within moments of Redis being back, and no key that was only read is lost. Two landings of the
/// kill: with nothing in flight (the callers' next commands fail at once and the check's connect is refused), and
/// with reads in flight (sent to a frozen Redis, then the process killed under them).
/// </summary>
public sealed class ShortRestartTests
{
    private const int KeyCount = 50;

    /// <summary>The fault: how long Redis stays down.</summary>
    private static readonly TimeSpan Down = TimeSpan.FromSeconds(2);

    /// <summary>From the restart completed (Redis answers PING with its data loaded) to the end of the first read that hits.</summary>
    private static readonly TimeSpan FirstHitBound = TimeSpan.FromSeconds(3);

    /// <summary>How long to wait for that hit, so that a build missing the bound still reports when it hit.</summary>
    private static readonly TimeSpan FirstHitWait = TimeSpan.FromSeconds(10);

    [Theory]
    [InlineData("nothing in flight")]
    [InlineData("reads in flight")]
    public async Task A_two_second_restart_costs_seconds_not_the_window(string landing)
    {
        await using var server = await RedisServer.StartNewAsync(new RedisServerOptions { AppendOnly = true }, Lab.Ct);
        await using var lab = new LabCache(server.ConnectionString, Lab.UseDefaults);
        await lab.StartAsync();
        await lab.WaitForConnectionAsync();

        IReadOnlyList<(string Key, int Shard)> keys = [.. Enumerable.Range(0, KeyCount).Select(i => ($"restart:{i}", 0))];
        foreach (var (key, _) in keys)
        {
            await lab.Cache.SetAsync(key, Traffic.ValueOf(key), new DistributedCacheEntryOptions(), Lab.Ct);
        }

        Assert.All(keys, k => Assert.Equal(Traffic.ValueOf(k.Key), lab.Cache.Get(k.Key)));

        // 2 asynchronous readers and 1 synchronous one, 5 ms apart: a light load. Bounded: they stop at the limit.
        var limit = Down + FirstHitWait + TimeSpan.FromSeconds(20);
        Traffic readers;
        TimeSpan killedOn;
        DateTimeOffset killedAt;
        if (landing == "reads in flight")
        {
            readers = FailoverReaders.Start(lab.Cache, keys, asyncReaders: 2, syncReaders: 1, limit);
            try
            {
                Assert.NotNull(await readers.WaitForAsync(s => s.Hit, TimeSpan.Zero, TimeSpan.FromSeconds(5)));
                var multiplexer = await lab.GetMultiplexerAsync();

                // Frozen first, so that the readers' next reads are sent and wait for replies: the kill lands under them.
                server.Pause();
                await Lab.UntilAsync("reads sent to the frozen Redis", TimeSpan.FromSeconds(5),
                    () => Task.FromResult(multiplexer.GetCounters().Interactive.SentItemsAwaitingResponse >= 2));
                killedOn = readers.Now;
                killedAt = DateTimeOffset.UtcNow;
                server.Kill();
            }
            catch
            {
                await readers.DisposeAsync();
                throw;
            }
        }
        else
        {
            // Nothing in flight: the readers start after the kill.
            killedAt = DateTimeOffset.UtcNow;
            server.Kill();
            readers = FailoverReaders.Start(lab.Cache, keys, asyncReaders: 2, syncReaders: 1, limit);
            killedOn = readers.Now;
        }

        await using (readers)
        {
            await Task.Delay(Down, Lab.Ct); // The fault itself: Redis is down for 2 s.
            await server.RestartAsync(Lab.Ct);
            var backOn = readers.Now;
            var backAt = DateTimeOffset.UtcNow;

            var firstHit = await readers.WaitForAsync(s => s.Hit, killedOn, FirstHitWait);

            // A little more traffic, so that a relapse after the first hit shows in the figures.
            await Task.Delay(TimeSpan.FromMilliseconds(500), Lab.Ct);
            await readers.StopAsync();

            // Every key is still in Redis with its value (read through the stock provider): the outage's reads deleted nothing.
            using var stock = Lab.CreateStock(server.ConnectionString);
            var lost = new List<string>();
            foreach (var (key, _) in keys)
            {
                if (await stock.GetAsync(key, Lab.Ct) is not { } value || !value.AsSpan().SequenceEqual(Traffic.ValueOf(key)))
                {
                    lost.Add(key);
                }
            }

            var fromKill = readers.Samples.Where(s => s.At >= killedOn).ToList();
            var afterHit = firstHit is null ? [] : fromKill.Where(s => s.At > firstHit.At).ToList();
            var errors = fromKill.Where(s => s.Error is not null).ToList();
            var slowest = fromKill.Select(s => s.Elapsed).DefaultIfEmpty().Max();
            var hitAfterBack = firstHit is null ? (TimeSpan?)null : firstHit.At + firstHit.Elapsed - backOn;
            var summary = string.Create(CultureInfo.InvariantCulture,
                $"{landing}: killed at {killedAt:HH:mm:ss.fff}, back at {backAt:HH:mm:ss.fff} ({(backOn - killedOn).TotalMilliseconds:0} ms later); first hit ended " +
                $"{(hitAfterBack is { } h ? $"{h.TotalMilliseconds:0} ms" : $"never (within {FirstHitWait.TotalSeconds:0} s)")} after Redis was back; " +
                $"reads from the kill on: {fromKill.Count} ({fromKill.Count(s => s.Hit)} hits), after the first hit {HitRatio.Of(afterHit)} hit; " +
                $"slowest {slowest.TotalMilliseconds:0} ms, {errors.Count} threw; {KeyCount - lost.Count} of {KeyCount} keys still in Redis with their values; windows opened {lab.Availability.Outages} " +
                $"({lab.DescribeOutageEvents()})");
            Lab.Report(summary);
            TestContext.Current.SendDiagnosticMessage(summary);
            Lab.Report(lab.DescribeLogs());

            Assert.True(errors.Count == 0, $"{errors.Count} reads threw, first: {errors.FirstOrDefault()?.Error}\n{summary}");
            Assert.True(slowest <= Lab.DefaultsCallBound, $"a read took {slowest.TotalMilliseconds:0} ms: {summary}\n{lab.DescribeLogs()}");
            Assert.True(lost.Count == 0, $"{lost.Count} of {KeyCount} keys lost or changed ({string.Join(", ", lost.Take(10))}): {summary}\n{lab.DescribeLogs()}");
            Assert.True(hitAfterBack <= FirstHitBound, $"the first hit came too late: {summary}\n{lab.DescribeLogs()}");
        }
    }
}
