using System.Diagnostics;
using Microsoft.Extensions.Logging;
using Resilient.Caching.IntegrationTests.FaultLab;
using Resilient.Caching.IntegrationTests.Infrastructure;
using Xunit;

namespace Resilient.Caching.IntegrationTests.Cache;

/// <summary>The state table against a real Redis: killed, restarted, absent at start-up.</summary>
public sealed class OutageTests
{
    // Behaviour bounds with generous slack for a loaded 2-core CI machine; the settings are 500 ms / 1.5 s.
    private static readonly TimeSpan OperationBound = TimeSpan.FromSeconds(2);
    private static readonly TimeSpan ShortCircuitBound = TimeSpan.FromMilliseconds(250);
    private static readonly TimeSpan RecoverBound = TimeSpan.FromSeconds(20);

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task RedisKilled_NoCallerSeesAnError_CallsInsideTheWindowDoNotWait_AndRestartIsPickedUp(bool async)
    {
        await using var redis = await RedisServer.StartNewAsync(cancellationToken: Ct);
        using var host = new LabCache(redis.ConnectionString);
        var cache = host.Cache;

        // Connected first: a synchronous call that waited more than a few ms for a cold connection takes its fallback
        // by design, and a loaded machine can take that long to connect. The cold start is the next test's subject.
        await host.WaitForConnectionAsync();
        await cache.SetAsync("k", Lab.Bytes("before"), async);
        Assert.Equal("before", Lab.Text(await cache.GetAsync("k", async)));

        redis.Kill();

        // The first call meets the dead connection: a miss within the operation timeout.
        var first = Stopwatch.StartNew();
        Assert.Null(await cache.GetAsync("k", async));
        Assert.True(first.Elapsed < OperationBound, $"first call took {first.Elapsed}");

        // A refused connection is confirmed on a fresh one (a blip would pass), then the window opens.
        await host.WaitForAvailabilityAsync(false, OperationBound);

        // Inside the window nothing waits and nothing throws, reads and writes alike.
        for (var i = 0; i < 20; i++)
        {
            var call = Stopwatch.StartNew();
            await cache.SetAsync("k", Lab.Bytes("during"), async);
            Assert.Null(await cache.GetAsync("k", async));
            Assert.True(call.Elapsed < ShortCircuitBound, $"call {i} inside the window took {call.Elapsed}");
        }

        await host.AssertLoggedAsync(r => r.Id.Id == Log.IdWindowOpened && r.Level == LogLevel.Warning);

        await redis.RestartAsync(Ct);
        var recovered = await host.UsedAgainAsync(async, within: RecoverBound);
        Assert.True(recovered < host.Availability.Window + OperationBound + OperationBound, $"recovered after {recovered}");
        Assert.True(host.Availability.IsAvailable);
        await host.AssertLoggedAsync(r => r.Id.Id == Log.IdWindowClosed);
    }

    [Fact]
    public async Task RedisAbsentAtStartup_StartDoesNotBlock_FirstCallIsBounded_AndLaterRedisIsUsed()
    {
        // Redis is started later on this port, which refuses connections until then.
        var port = Lab.ClosedPort();
        await using var app = new LabCache($"127.0.0.1:{port}");
        var start = Stopwatch.StartNew();
        await app.StartAsync();
        Assert.True(start.Elapsed < TimeSpan.FromSeconds(2), $"start-up took {start.Elapsed}");

        var cache = app.Cache;
        var first = Stopwatch.StartNew();
        Assert.Null(await cache.GetAsync("k", Ct));
        Assert.True(first.Elapsed < OperationBound, $"first call took {first.Elapsed} (the stock provider: 5–16 s)");
        var sync = Stopwatch.StartNew();
        Assert.Null(cache.Get("k"));
        Assert.True(sync.Elapsed < ShortCircuitBound, $"second call took {sync.Elapsed}");

        await using var redis = await RedisServer.StartNewAsync(new RedisServerOptions { Port = port }, Ct);
        await app.UsedAgainAsync(async: true, within: RecoverBound);
    }
}
