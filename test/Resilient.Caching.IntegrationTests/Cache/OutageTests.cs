using System.Diagnostics;
using Microsoft.Extensions.Caching.Distributed;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;
using Resilient.Caching.Configuration;
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

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task RedisKilled_NoCallerSeesAnError_CallsInsideTheWindowDoNotWait_AndRestartIsPickedUp(bool async)
    {
        await using var redis = await RedisServer.StartNewAsync(cancellationToken: Ct);
        using var host = new LabCache(redis.ConnectionString);
        var cache = host.Cache;
        await Set(cache, "k", "before", async);
        Assert.Equal("before", await Get(cache, "k", async));

        redis.Kill();

        // The first call meets the dead connection: a miss within the operation timeout.
        var first = Stopwatch.StartNew();
        Assert.Null(await Get(cache, "k", async));
        Assert.True(first.Elapsed < OperationBound, $"first call took {first.Elapsed}");

        // A refused connection is confirmed on a fresh one (a blip would pass), then the window opens.
        await host.WaitForAvailabilityAsync(false, OperationBound);

        // Inside the window nothing waits and nothing throws, reads and writes alike.
        for (var i = 0; i < 20; i++)
        {
            var call = Stopwatch.StartNew();
            await Set(cache, "k", "during", async);
            Assert.Null(await Get(cache, "k", async));
            Assert.True(call.Elapsed < ShortCircuitBound, $"call {i} inside the window took {call.Elapsed}");
        }

        Assert.Single(host.Logs.GetSnapshot(), r => r.Id.Id == Log.IdWindowOpened && r.Level == LogLevel.Warning);

        await redis.RestartAsync(Ct);
        var recovered = await RecoverAsync(cache, async);
        Assert.True(recovered < host.Availability.Window + OperationBound + OperationBound, $"recovered after {recovered}");
        Assert.True(host.Availability.IsAvailable);
        Assert.Single(host.Logs.GetSnapshot(), r => r.Id.Id == Log.IdWindowClosed);
    }

    [Fact]
    public async Task RedisAbsentAtStartup_StartDoesNotBlock_FirstCallIsBounded_AndLaterRedisIsUsed()
    {
        // Reserve a port that refuses connections, and keep it for the Redis started later.
        await using var redis = await RedisServer.StartNewAsync(cancellationToken: Ct);
        redis.Kill();

        var logs = new FakeLogCollector();
        var builder = Host.CreateEmptyApplicationBuilder(new());
        builder.Services.AddLogging(b => b.AddProvider(new FakeLoggerProvider(logs)));
        builder.Services.AddSingleton(new EnvironmentVariables(_ => null));
        builder.Services.AddResilientStackExchangeRedisCache(o =>
        {
            o.Configuration = redis.ConnectionString;
            o.OperationTimeout = TimeSpan.FromMilliseconds(500);
            o.UnavailableWindow = TimeSpan.FromSeconds(1.5);
        });
        using var app = builder.Build();

        var start = Stopwatch.StartNew();
        await app.StartAsync(Ct);
        Assert.True(start.Elapsed < TimeSpan.FromSeconds(2), $"start-up took {start.Elapsed}");

        var cache = app.Services.GetRequiredService<IDistributedCache>();
        var first = Stopwatch.StartNew();
        Assert.Null(await cache.GetAsync("k", Ct));
        Assert.True(first.Elapsed < OperationBound, $"first call took {first.Elapsed} (the stock provider: 5–16 s)");
        var sync = Stopwatch.StartNew();
        Assert.Null(cache.Get("k"));
        Assert.True(sync.Elapsed < ShortCircuitBound, $"second call took {sync.Elapsed}");

        await redis.RestartAsync(Ct);
        await RecoverAsync(cache, async: true);
        await app.StopAsync(Ct);
    }

    private static async Task<TimeSpan> RecoverAsync(IDistributedCache cache, bool async)
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            await Set(cache, "recovered", "yes", async);
            if (await Get(cache, "recovered", async) == "yes")
            {
                return clock.Elapsed;
            }

            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(20), "the cache did not use Redis again within 20 s");
            await Task.Delay(100, Ct);
        }
    }

    private static async Task Set(IDistributedCache cache, string key, string value, bool async)
    {
        if (async)
        {
            await cache.SetStringAsync(key, value, Ct);
        }
        else
        {
            cache.SetString(key, value);
        }
    }

    private static async Task<string?> Get(IDistributedCache cache, string key, bool async) =>
        async ? await cache.GetStringAsync(key, Ct) : cache.GetString(key);
}
