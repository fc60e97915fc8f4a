using System.Diagnostics;
using Microsoft.AspNetCore.OutputCaching;
using Microsoft.Extensions.Caching.Distributed;
using Microsoft.Extensions.DependencyInjection;
using Resilient.Caching.IntegrationTests.Infrastructure;
using Xunit;

namespace Resilient.Caching.IntegrationTests.FaultLab;

/// <summary>
/// Disposal never waits for Redis: with calls in flight to a frozen Redis and the default 5 s operation timeout,
/// disposing the container (what the host does at shutdown, after the application stopped) returns at once, and
/// the calls in flight still end with their fallback within their operation timeout.
/// </summary>
public sealed class ShutdownTests
{
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
}
