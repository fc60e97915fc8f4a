using System.Text.Json;
using Microsoft.Extensions.Logging;
using Resilient.Caching.IntegrationTests.FaultLab;
using Resilient.Caching.IntegrationTests.Infrastructure;
using Xunit;

namespace Resilient.Caching.IntegrationTests.EndToEnd;

/// <summary>
/// The consumers the design promises work unchanged (session, output caching, HybridCache, the health check), in
/// the demo app on a real Kestrel over a real Redis: they use Redis while it is up, keep answering 200 without it,
/// and use it again within a window of its return. Real time: Kestrel, Redis and the network are real; every wait
/// is a poll bounded in time and count.
/// </summary>
public sealed class DemoOutageTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task Redis_killed_every_page_answers_without_it_then_uses_it_again_after_restart()
    {
        await using var redis = await RedisServer.StartNewAsync(cancellationToken: Ct);
        await using var demo = await DemoHost.StartAsync(redis.ConnectionString);

        await AssertPagesUseRedisAsync(demo);
        await AssertStoredInRedisAsync(redis);

        redis.Kill();
        await AssertPagesWorkWithoutRedisAsync(demo);

        await redis.RestartAsync(Ct);
        var recovery = await AssertRecoversAsync(demo);
        TestContext.Current.TestOutputHelper?.WriteLine($"Redis restarted: pages use it again after {recovery.TotalSeconds:0.00} s (window {demo.Window.TotalSeconds} s).");
    }

    [Fact]
    public async Task Network_blackholed_every_page_answers_without_redis_then_uses_it_again_after_the_network_heals()
    {
        await using var redis = await RedisServer.StartNewAsync(cancellationToken: Ct);
        await using var proxy = new FaultProxy(redis.Host, redis.Port);
        await using var demo = await DemoHost.StartAsync(proxy.ConnectionString);

        await AssertPagesUseRedisAsync(demo);

        // Packets silently dropped both ways, connections left open: the multiplexer believes it is connected.
        proxy.SetMode(FaultMode.Blackhole);
        await AssertPagesWorkWithoutRedisAsync(demo);

        proxy.SetMode(FaultMode.PassThrough);
        var recovery = await AssertRecoversAsync(demo);
        TestContext.Current.TestOutputHelper?.WriteLine($"Network healed: pages use Redis again after {recovery.TotalSeconds:0.00} s (window {demo.Window.TotalSeconds} s).");
    }

    [Fact]
    public async Task Tag_eviction_during_an_outage_is_skipped_and_logged_with_the_tag()
    {
        await using var redis = await RedisServer.StartNewAsync(cancellationToken: Ct);
        await using var demo = await DemoHost.StartAsync(redis.ConnectionString, window: TimeSpan.FromSeconds(30));
        Assert.Equal("Healthy", (await demo.ReadHealthAsync()).Status);

        redis.Kill();
        Assert.Equal("Degraded", (await demo.ReadHealthAsync()).Status);
        var page = await demo.ReadAsync("/output/evict", "evicted");

        Assert.Contains("skipped", page, StringComparison.Ordinal);
        var skipped = Assert.Single(demo.Logs.GetSnapshot(), r => r.Id.Id == Log.IdTagEvictionSkipped && r.Category == typeof(ResilientDistributedCache).FullName);
        Assert.Equal(LogLevel.Warning, skipped.Level);
        Assert.Equal(Demo.DemoApp.OutputTag, skipped.GetStructuredStateValue("Tag"));
    }

    /// <summary>Redis up: the session counts, the output page is cached until its tag is evicted, HybridCache reads Redis.</summary>
    private static async Task AssertPagesUseRedisAsync(DemoHost demo)
    {
        var (status, _) = await demo.ReadHealthAsync();
        Assert.Equal("Healthy", status);

        await AssertCachedInRedisAsync(demo);

        var cached = await demo.ReadOutputAsync();
        await demo.EvictOutputAsync();
        var fresh = await demo.ReadOutputAsync();
        Assert.NotEqual(cached, fresh);
        await AssertOutputCachedAsync(demo);
    }

    /// <summary>
    /// The session counts on, and the output page and the HybridCache value are served from Redis. Polled: session,
    /// output caching and HybridCache write to Redis after the response has been sent, so a request right behind
    /// the one that wrote may still find the old state.
    /// </summary>
    private static async Task AssertCachedInRedisAsync(DemoHost demo)
    {
        var bound = TimeSpan.FromSeconds(2);
        var visits = await demo.VisitSessionAsync();
        await Lab.UntilAsync("the session counts on", bound, async () =>
        {
            var next = await demo.VisitSessionAsync();
            var counted = next == visits + 1;
            visits = next;
            return counted;
        });

        await AssertOutputCachedAsync(demo);

        var value = (await demo.ReadHybridAsync()).Value;
        await Lab.UntilAsync("HybridCache reads its value from Redis", bound, async () =>
        {
            var again = await demo.ReadHybridAsync();
            var cached = again.FromRedis && again.Value == value;
            value = again.Value;
            return cached;
        });
    }

    private static async Task AssertOutputCachedAsync(DemoHost demo)
    {
        var rendered = await demo.ReadOutputAsync();
        await Lab.UntilAsync("the output page is served from Redis", TimeSpan.FromSeconds(2), async () =>
        {
            var again = await demo.ReadOutputAsync();
            var cached = again == rendered;
            rendered = again;
            return cached;
        });
    }

    /// <summary>The values are in Redis itself, not in some in-process fallback.</summary>
    private static async Task AssertStoredInRedisAsync(RedisServer redis)
    {
        var keys = await redis.ExecuteAsync("KEYS", "e2e:*");
        Assert.Contains("e2e:__MSOCV_", keys, StringComparison.Ordinal); // output cache (Microsoft's store's value prefix)
        Assert.Contains($"e2e:{Demo.DemoApp.HybridKey}", keys, StringComparison.Ordinal); // HybridCache's L2
        Assert.Matches("e2e:[0-9a-f]{8}-", keys); // the session, keyed by its id
    }

    /// <summary>Redis gone: every page answers 200, the session is empty, pages and values are produced afresh, health is Degraded.</summary>
    private static async Task AssertPagesWorkWithoutRedisAsync(DemoHost demo)
    {
        // The first request finds out (one operation timeout at most), the others skip Redis.
        Assert.Equal(1, await demo.VisitSessionAsync());
        Assert.Equal(1, await demo.VisitSessionAsync());

        var rendered = await demo.ReadOutputAsync();
        Assert.NotEqual(rendered, await demo.ReadOutputAsync());

        var first = await demo.ReadHybridAsync();
        var second = await demo.ReadHybridAsync();
        Assert.False(first.FromRedis || second.FromRedis, "HybridCache claims a value from Redis during the outage");
        Assert.NotEqual(first.Value, second.Value);

        var (status, check) = await demo.ReadHealthAsync();
        Assert.Equal("Degraded", status);
        var data = check.GetProperty("data");
        Assert.True(data.GetProperty("skipped_operations").GetInt64() > 0, check.ToString());
        Assert.Equal(JsonValueKind.Number, data.GetProperty("retry_after_seconds").ValueKind);
        Assert.Equal(JsonValueKind.Number, data.GetProperty("outage_seconds").ValueKind);
        Assert.False(string.IsNullOrEmpty(data.GetProperty("last_error").GetString()), check.ToString());
    }

    /// <summary>Redis back: within a window (plus the probe's round trip and the poll) every consumer uses it again.</summary>
    private static async Task<TimeSpan> AssertRecoversAsync(DemoHost demo)
    {
        // The window may have just been reopened by a failed probe: one window, one connect, one round trip, and
        // slack for a loaded machine running other tests.
        var deadline = demo.Window + TimeSpan.FromSeconds(3);
        var recovered = await Lab.UntilAsync("/health Healthy", deadline, async () => (await demo.ReadHealthAsync()).Status == "Healthy");

        // Once the window is closed, every consumer uses Redis again.
        await AssertCachedInRedisAsync(demo);
        return recovered;
    }
}
