using System.Diagnostics.Metrics;
using System.Text;
using Microsoft.AspNetCore.OutputCaching;
using Microsoft.Extensions.Caching.Distributed;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;
using Microsoft.Extensions.Time.Testing;
using Resilient.Caching.Diagnostics;
using Resilient.Caching.IntegrationTests.FaultLab;
using Resilient.Caching.IntegrationTests.Infrastructure;
using StackExchange.Redis;
using Xunit;

namespace Resilient.Caching.IntegrationTests.Cache;

/// <summary>
/// Every instrument of the <c>Resilient.Caching</c> meter, against a real Redis that is killed and restarted. The
/// window runs on a <see cref="FakeTimeProvider"/>, so its elapsing is a step of the test, not a sleep.
/// </summary>
public sealed class MetricsTests
{
    private static readonly TimeSpan Window = TimeSpan.FromSeconds(30);
    private static readonly DistributedCacheEntryOptions Options = new() { SlidingExpiration = TimeSpan.FromMinutes(5) };

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task Operations_are_counted_by_operation_and_outcome_and_timed_when_they_call_redis()
    {
        await using var redis = await RedisServer.StartNewAsync(cancellationToken: Ct);
        using var lab = Build(redis.ConnectionString, new FakeTimeProvider());
        var services = lab.Provider;
        var meterFactory = services.GetRequiredService<IMeterFactory>();
        using var operations = new MetricCollector<long>(meterFactory, ResilientCacheMetrics.MeterName, ResilientCacheMetrics.OperationsName);
        using var durations = new MetricCollector<double>(meterFactory, ResilientCacheMetrics.MeterName, ResilientCacheMetrics.DurationName);
        var cache = services.GetRequiredService<IDistributedCache>();
        var store = services.GetRequiredService<IOutputCacheStore>();
        var value = Encoding.UTF8.GetBytes("value");

        // Redis up: the distributed cache and the output-cache store.
        await cache.SetAsync("k", value, Options, Ct);                              // set/write
        Assert.Equal(value, await cache.GetAsync("k", Ct));                         // get/hit
        Assert.Null(await cache.GetAsync("absent", Ct));                            // get/miss
        await cache.RefreshAsync("k", Ct);                                          // refresh/write
        await cache.RemoveAsync("k", Ct);                                           // remove/write
        await store.SetAsync("page", value, ["tag"], TimeSpan.FromMinutes(1), Ct);  // set/write
        Assert.Equal(value, await store.GetAsync("page", Ct));                      // get/hit
        await store.EvictByTagAsync("tag", Ct);                                     // evict_by_tag/write
        Assert.Null(await store.GetAsync("page", Ct));                              // get/miss

        // An error that says nothing about availability (WRONGTYPE) propagates, is counted, and opens no window.
        await redis.ExecuteAsync("SET", "m:text", "not a hash");
        await Assert.ThrowsAsync<RedisServerException>(() => cache.GetAsync("text", Ct)); // get/error
        Assert.True(services.GetRequiredService<CacheAvailability>().IsAvailable);

        // Redis gone: the first call fails (and opens the window), the next ones skip Redis.
        redis.Kill();
        Assert.Null(await cache.GetAsync("k", Ct));                                 // get/error
        Assert.Null(await cache.GetAsync("k", Ct));                                 // get/skipped
        await cache.SetAsync("k", value, Options, Ct);                              // set/skipped
        Assert.Null(await store.GetAsync("page", Ct));                              // get/skipped
        await store.EvictByTagAsync("tag", Ct);                                     // evict_by_tag/skipped

        Assert.Equal(
            new Dictionary<(string, string), long>
            {
                [("set", "write")] = 2,
                [("get", "hit")] = 2,
                [("get", "miss")] = 2,
                [("refresh", "write")] = 1,
                [("remove", "write")] = 1,
                [("evict_by_tag", "write")] = 1,
                [("get", "error")] = 2,
                [("get", "skipped")] = 2,
                [("set", "skipped")] = 1,
                [("evict_by_tag", "skipped")] = 1,
            },
            Count(operations.GetMeasurementSnapshot()));

        // Durations: one per operation that called Redis, with the same tags; none for skipped ones.
        var timed = durations.GetMeasurementSnapshot();
        Assert.Equal(11, timed.Count);
        Assert.DoesNotContain(timed, m => (string?)m.Tags[ResilientCacheMetrics.OutcomeTag] == "skipped");
        Assert.All(timed, m =>
        {
            Assert.InRange(m.Value, 0, 10);
            Assert.True(m.Tags.ContainsKey(ResilientCacheMetrics.OperationTag));
        });
        Assert.Equal(2, timed.Count(m => (string?)m.Tags[ResilientCacheMetrics.OperationTag] == "get" && (string?)m.Tags[ResilientCacheMetrics.OutcomeTag] == "error"));
    }

    [Fact]
    public async Task Window_transitions_are_counted_and_the_availability_gauge_is_0_during_an_outage_and_1_after()
    {
        var time = new FakeTimeProvider();
        await using var redis = await RedisServer.StartNewAsync(cancellationToken: Ct);
        using var lab = Build(redis.ConnectionString, time);
        var services = lab.Provider;
        var meterFactory = services.GetRequiredService<IMeterFactory>();
        using var transitions = new MetricCollector<long>(meterFactory, ResilientCacheMetrics.MeterName, ResilientCacheMetrics.TransitionsName);
        using var availability = new MetricCollector<int>(meterFactory, ResilientCacheMetrics.MeterName, ResilientCacheMetrics.AvailabilityName);
        var cache = services.GetRequiredService<IDistributedCache>();

        await cache.SetStringAsync("k", "v", Ct);
        Assert.Equal(1, Gauge(availability));
        Assert.Empty(Transitions(transitions));

        // The refused connection is checked on a fresh one (off the caller's path), which confirms the outage.
        redis.Kill();
        Assert.Null(await cache.GetAsync("k", Ct));
        await TransitionsAsync(transitions, "opened");
        Assert.Equal(0, Gauge(availability));

        // The window elapses, the probe finds Redis still gone: a full window again.
        time.Advance(Window);
        Assert.Null(await cache.GetAsync("k", Ct));
        await TransitionsAsync(transitions, "opened", "reopened");
        Assert.Equal(0, Gauge(availability));

        // Redis is back: the client's own reconnect (every half second) starts the probe before the window elapses,
        // and the probe closes it, with nobody calling. (A probe that meets the refusal still on record in the instant
        // before that reconnect reopens the window once more; the reconnect's probe then closes it.)
        await redis.RestartAsync(Ct);
        Assert.True(
            await Lab.EventuallyAsync(() => Transitions(transitions) is [.., "closed"], TimeSpan.FromSeconds(10)),
            string.Join(", ", Transitions(transitions)));
        Assert.Equal(["opened", "reopened"], Transitions(transitions)[..2]);
        Assert.All(Transitions(transitions)[2..^1], t => Assert.Equal("reopened", t));
        Assert.Equal(1, Gauge(availability));

        // Redis restarted without its data: "k" is gone; after a real read, writes go through again.
        Assert.Null(await cache.GetStringAsync("k", Ct));
        await cache.SetStringAsync("k", "v2", Ct);
        Assert.Equal("v2", await cache.GetStringAsync("k", Ct));
    }

    private static LabCache Build(string configuration, TimeProvider time) =>
        new(
            configuration,
            o =>
            {
                o.InstanceName = "m:";

                // Generous: the connect after a reset waits at most this long, on a machine that also runs other tests.
                o.OperationTimeout = TimeSpan.FromSeconds(2);
                o.UnavailableWindow = Window;
            },
            services: s => s.AddMetrics().AddSingleton(time).AddResilientStackExchangeRedisOutputCache());

    private static Dictionary<(string, string), long> Count(IReadOnlyList<CollectedMeasurement<long>> measurements) =>
        measurements
            .GroupBy(m => ((string)m.Tags[ResilientCacheMetrics.OperationTag]!, (string)m.Tags[ResilientCacheMetrics.OutcomeTag]!))
            .ToDictionary(g => g.Key, g => g.Sum(m => m.Value));

    private static string[] Transitions(MetricCollector<long> collector) =>
        [.. collector.GetMeasurementSnapshot().Select(m => (string)m.Tags[ResilientCacheMetrics.TransitionTag]!)];

    private static int Gauge(MetricCollector<int> collector)
    {
        collector.RecordObservableInstruments();
        return collector.LastMeasurement!.Value;
    }

    /// <summary>Waits (probes run off the callers' path) until exactly these transitions were counted.</summary>
    private static async Task TransitionsAsync(MetricCollector<long> transitions, params string[] expected)
    {
        await Lab.EventuallyAsync(() => Transitions(transitions).Length >= expected.Length, TimeSpan.FromSeconds(10));
        Assert.Equal(expected, Transitions(transitions));
    }
}
