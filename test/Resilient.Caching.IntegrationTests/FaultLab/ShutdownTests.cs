using System.Diagnostics;
using System.Globalization;
using Microsoft.AspNetCore.OutputCaching;
using Microsoft.Extensions.Caching.Distributed;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Resilient.Caching.IntegrationTests.Infrastructure;
using Xunit;

namespace Resilient.Caching.IntegrationTests.FaultLab;

/// <summary>
/// Disposal never waits for Redis: with calls in flight to a frozen Redis and the default 5 s operation timeout,
/// disposing the container (what the host does at shutdown, after the application stopped) returns at once, and
/// the calls in flight still end with their fallback within their operation timeout. And shutdown is quiet: the
/// connection it closes is no outage, so disposing a host whose cache is in use (healthy, or during an outage with a
/// check possibly under way) writes no "unavailable" Warning and opens no window, during or after the disposal.
/// </summary>
public sealed class ShutdownTests
{
    /// <summary>The events that say Redis is unavailable: a window opened, a probe failed, credentials refused.</summary>
    private static readonly int[] UnavailableEvents = [Log.IdWindowOpened, Log.IdProbeFailed, Log.IdAuthenticationFailed];

    /// <summary>After the disposal, how long to watch: anything begun before it (a call, a probe) ends within the operation timeout.</summary>
    private static readonly TimeSpan WatchAfter = Lab.DefaultsCallBound;

    [Fact]
    public async Task Disposal_with_calls_in_flight_to_a_frozen_redis_does_not_wait()
    {
        await using var server = await RedisServer.StartNewAsync(cancellationToken: Lab.Ct);
        var lab = new LabCache(server.ConnectionString, Lab.UseDefaultTimeouts, services: s => s.AddResilientStackExchangeRedisOutputCache());
        var cache = lab.Cache;
        var store = lab.Provider.GetRequiredService<IOutputCacheStore>();
        await cache.SetStringAsync("k", "v", Lab.Ct);
        await store.SetAsync("page", [1], ["tag"], TimeSpan.FromMinutes(1), Lab.Ct);
        Assert.Equal("v", await cache.GetStringAsync("k", Lab.Ct));

        server.Pause();
        try
        {
            var inFlight = new Task[]
            {
                cache.GetAsync("k", Lab.Ct),
                cache.SetAsync("k", [2], new DistributedCacheEntryOptions(), Lab.Ct),
                store.GetAsync("page", Lab.Ct).AsTask(),
                Task.Run(() => cache.Get("k")),
            };
            await Task.Delay(200, Lab.Ct); // The calls reach the frozen server: part of the scenario.
            Assert.All(inFlight, t => Assert.False(t.IsCompleted));

            var dispose = Stopwatch.StartNew();
            await lab.DisposeAsync();
            dispose.Stop();
            Lab.Report($"disposal took {dispose.Elapsed.TotalMilliseconds:0} ms");
            Assert.True(dispose.Elapsed < TimeSpan.FromSeconds(1), $"disposal took {dispose.Elapsed.TotalMilliseconds:0} ms");

            // The calls in flight still end within their operation timeout (5 s, plus slack), without an exception.
            await Task.WhenAll(inFlight).WaitAsync(TimeSpan.FromSeconds(7), Lab.Ct);
        }
        finally
        {
            server.Resume();
        }
    }

    [Fact]
    public async Task Disposing_a_host_whose_cache_is_in_use_is_quiet()
    {
        await using var server = await RedisServer.StartNewAsync(cancellationToken: Lab.Ct);
        const int rounds = 5;
        var figures = new List<string>();
        for (var round = 0; round < rounds; round++)
        {
            var lab = new LabCache(server.ConnectionString, Lab.UseDefaults);
            await lab.StartAsync();
            await lab.WarmUpAsync();
            var (quiet, figure) = await DisposeUnderTrafficAsync(lab, $"shutdown:{round}", () => Task.CompletedTask, watch: false);
            figures.Add($"round {round}: {figure}");
            Assert.True(quiet, $"round {round}: {figure}\n{lab.DescribeLogs()}");
            Assert.True(lab.Availability.IsAvailable, $"round {round}: the cache stopped using Redis at shutdown: {figure}\n{lab.DescribeLogs()}");
        }

        Lab.Report(string.Join('\n', figures));
    }

    [Theory]
    [InlineData("a failure being checked")]
    [InlineData("a window open")]
    [InlineData("a window open, Redis back")]
    public async Task Disposing_a_host_during_an_outage_is_quiet(string state)
    {
        await using var server = await RedisServer.StartNewAsync(cancellationToken: Lab.Ct);
        await using var proxy = new FaultProxy(server.Host, server.Port);

        // The check of a failure must be under way when the host goes: it connects through a proxy that swallows the
        // handshake, so it waits out its operation timeout. A killed Redis is reached directly (its refusal is seen as such).
        var checking = state == "a failure being checked";
        var lab = new LabCache(checking ? proxy.ConnectionString : server.ConnectionString, Lab.UseDefaults);
        await lab.StartAsync();
        await lab.WarmUpAsync();

        async Task Fault()
        {
            if (checking)
            {
                // Every connection reset, new ones never answered: a suspicion whose probe hangs.
                proxy.SetMode(FaultMode.Blackhole);
                proxy.ResetAllConnections();
                await Lab.UntilAsync("a probe checking the failure", TimeSpan.FromSeconds(5),
                    () => Task.FromResult(lab.Services.Core.Deployment.Verdict is { IsCompleted: false }));
                return;
            }

            // The window open and said so: its Warning, written just after it opened, is the outage's, not the shutdown's.
            server.Kill();
            await Lab.UntilAsync("the window open", TimeSpan.FromSeconds(10),
                () => Task.FromResult(lab.Availability.IsOutage && lab.LogCount(Log.IdWindowOpened, LogLevel.Warning) > 0));
            if (state == "a window open, Redis back")
            {
                // The connection made again in the background may be starting the early check as the host goes.
                await server.RestartAsync(Lab.Ct);
            }
        }

        var (quiet, figure) = await DisposeUnderTrafficAsync(lab, "shutdown", Fault, watch: true);
        Assert.True(quiet, $"{state}: {figure}\n{lab.DescribeLogs()}");
    }

    /// <summary>
    /// Callers (2 async, 2 sync) use the cache of a started host; the fault (if any) is injected under them; then the
    /// host is stopped and disposed while they go on. True when, from the disposal on, no Warning or worse says Redis
    /// is unavailable and no window opened; with the figures for the output.
    /// </summary>
    private static async Task<(bool Quiet, string Figures)> DisposeUnderTrafficAsync(LabCache lab, string prefix, Func<Task> fault, bool watch)
    {
        // A millisecond between calls: some are under way whenever the host goes.
        var pause = TimeSpan.FromMilliseconds(1);
        var asyncTraffic = Traffic.Start(lab.Cache, async: true, workers: 2, pause: pause, limit: TimeSpan.FromSeconds(40), prefix: prefix + ":a");
        var syncTraffic = Traffic.Start(lab.Cache, async: false, workers: 2, pause: pause, limit: TimeSpan.FromSeconds(40), prefix: prefix + ":s");
        try
        {
            Assert.NotNull(await asyncTraffic.WaitForAsync(s => s.Outcome == CallOutcome.Hit, TimeSpan.Zero, TimeSpan.FromSeconds(5)));
            Assert.NotNull(await syncTraffic.WaitForAsync(s => s.Outcome == CallOutcome.Hit, TimeSpan.Zero, TimeSpan.FromSeconds(5)));
            await fault();

            var outages = lab.Availability.Outages;
            var mark = lab.LogMark();
            var disposedOn = (Async: asyncTraffic.Now, Sync: syncTraffic.Now);
            var dispose = Stopwatch.StartNew();
            await lab.DisposeAsync();
            dispose.Stop();

            if (watch)
            {
                // Watching for what a probe or a call begun before the disposal may still say: nothing to wait for.
                await Task.Delay(WatchAfter, Lab.Ct);
            }

            await asyncTraffic.StopAsync();
            await syncTraffic.StopAsync();

            var after = lab.Logs.GetSnapshot().Skip(mark).ToList();
            var loud = after.Where(r => r.Level >= LogLevel.Warning
                && (UnavailableEvents.Contains(r.Id.Id) || r.Message.Contains("unavailable", StringComparison.OrdinalIgnoreCase))).ToList();
            var calls = asyncTraffic.Samples.Where(s => s.End >= disposedOn.Async).Concat(syncTraffic.Samples.Where(s => s.End >= disposedOn.Sync)).ToList();
            var errors = calls.Where(s => s.Error is not null).GroupBy(s => s.Error!.GetType().Name).Select(g => $"{g.Count()}× {g.Key}");
            var figures = string.Create(CultureInfo.InvariantCulture,
                $"disposed in {dispose.Elapsed.TotalMilliseconds:0} ms; windows before {outages}, after {lab.Availability.Outages}; " +
                $"{after.Count} log records from the disposal on ({after.Count(r => r.Level >= LogLevel.Warning)} Warning or worse, {loud.Count} saying unavailable); " +
                $"{calls.Count} calls ended from the disposal on, slowest {calls.Select(s => s.Elapsed).DefaultIfEmpty().Max().TotalMilliseconds:0} ms, threw: {string.Join(", ", errors.DefaultIfEmpty("none"))}");
            Lab.Report(figures);
            foreach (var record in after)
            {
                Lab.Report($"  after disposal: {record.Timestamp:HH:mm:ss.fff} {record.Level} [{record.Id.Id}] {record.Message}");
            }

            return (loud.Count == 0 && lab.Availability.Outages == outages, figures);
        }
        finally
        {
            await asyncTraffic.DisposeAsync();
            await syncTraffic.DisposeAsync();
            await lab.DisposeAsync();
        }
    }
}
