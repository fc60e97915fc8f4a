using System.Diagnostics.Metrics;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;
using Microsoft.Extensions.Logging.Testing;
using Microsoft.Extensions.Time.Testing;
using Resilient.Caching.Diagnostics;
using Resilient.Caching.Guard;
using Resilient.Caching.Storage;
using Resilient.Caching.Tests.Recovery;
using Resilient.Caching.Topology;
using StackExchange.Redis;

namespace Resilient.Caching.Tests;

/// <summary>The one place the parts of a registration are built: one deployment window that every part shares, with the settings in force.</summary>
public sealed class CacheCoreTests : IDisposable
{
    private static readonly CacheCall<int, byte[]?> Get = new()
    {
        Operation = CacheOperation.Get,
        Invoke = static _ => throw new RedisTimeoutException(CommandFlags.None, "injected", CommandStatus.Sent),
        Outcome = static r => r is null ? CacheOutcome.Miss : CacheOutcome.Hit,
    };

    private static readonly CacheCall<int, byte[]?> Answered = new()
    {
        Operation = CacheOperation.Get,
        Invoke = static _ => [1],
        Outcome = static r => r is null ? CacheOutcome.Miss : CacheOutcome.Hit,
    };

    private readonly ServiceProvider _services = new ServiceCollection().AddMetrics().BuildServiceProvider();
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero));
    private readonly CountingConnection _connection = new();
    private readonly FakeLogger _logger = new();
    private readonly List<string> _evicted = [];
    private readonly ResilientRedisCacheOptions _options = new()
    {
        InstanceName = "app:",
        UnavailableWindow = TimeSpan.FromSeconds(17),
        OperationTimeout = TimeSpan.FromSeconds(3),
        MaxPendingInvalidations = 123,
        PurgeInstanceOnOverflow = true,
    };

    private bool _starved;
    private CacheCore? _core;

    private CacheCore Core => _core ??= new CacheCore(
        "orders", _options, new StoredKeys(_options.InstanceName), _connection, _time, _logger, _services.GetRequiredService<IMeterFactory>(),
        (tag, _) =>
        {
            _evicted.Add(tag);
            return ValueTask.CompletedTask;
        },
        () => _starved);

    [Fact]
    public void OneDeploymentWindow_SharedByEveryPart()
    {
        Assert.Same(Core.Deployment, Core.Shards.Deployment.Controller);
        Assert.Same(Core.Deployment, Core.Availability.Deployment);
        Assert.Same(Core.Availability, Core.Guard.Availability);
        Assert.Same(_logger, Core.Guard.Logger);
        Assert.Equal("orders", Core.Availability.Name);
        Assert.Equal(_options.UnavailableWindow, Core.Availability.Window);
        Assert.Same(_time, Core.Availability.TimeProvider);
    }

    [Fact]
    public void PendingInvalidations_TakeTheSettings()
    {
        Assert.Equal(123, Core.Pending.Capacity);
        Assert.True(Core.Pending.PurgeOnOverflow);
        Assert.Equal(CacheCore.MadeUpMissLifetime, Core.Pending.Misses.Lifetime);
        Assert.Equal(123, Core.Pending.Misses.Capacity);
    }

    [Fact]
    public void AFailureThroughTheGuard_OpensTheWindowTheAvailabilityReports()
    {
        Assert.True(Core.Availability.IsAvailable);

        Assert.Null(Core.Guard.Run(Get, CacheTarget.CacheKey("k"), 0));

        Assert.True(Core.Deployment.IsOutage);
        Assert.False(Core.Availability.IsAvailable);
        Assert.Equal(_options.UnavailableWindow, Core.Availability.RetryAfter);
        Assert.IsType<RedisTimeoutException>(Core.Availability.LastError);
    }

    [Fact]
    public void TheGuardsJudge_AsksTheGivenThreadPoolView()
    {
        _starved = true;
        Assert.NotNull(Core.Guard.Run(Answered, CacheTarget.CacheKey("answered"), 1)); // Redis answers other calls meanwhile.
        var probe = new TaskCompletionSource();
        _connection.Probe = () => probe.Task;

        Assert.Null(Core.Guard.Run(Get, CacheTarget.CacheKey("k"), 0));

        // A timeout while the pool is starved says nothing about Redis: no outage, no suspicion, no probe.
        Assert.False(Core.Deployment.IsOutage);
        Assert.True(Core.Availability.IsAvailable);
        Assert.Equal(0, _connection.Probes);
        probe.SetResult();
    }

    [Fact]
    public void ShardWindows_TakeTheSettings_AndCountInTheAvailability()
    {
        Core.Shards.Apply(
        [
            new("10.0.0.1:6379", [new SlotRange(0, 8191)], HasReplica: false),
            new("10.0.0.2:6379", [new SlotRange(8192, 16383)], HasReplica: false),
        ]);
        var shard = Core.Shards.Shards[0];

        shard.Controller.RecordFailure(new RedisTimeoutException(CommandFlags.None, "injected", CommandStatus.Sent), confirmed: true, fromProbe: false);

        Assert.Equal(_options.UnavailableWindow, shard.Controller.Window);
        Assert.Same(_time, shard.Controller.TimeProvider);
        Assert.True(Core.Shards.AnyShardOut);
        Assert.False(Core.Availability.IsAvailable);
        Assert.True(Core.Deployment.IsAvailable);
    }

    [Fact]
    public void Measurements_CarryTheCachesName()
    {
        using var operations = new MetricCollector<long>(_services.GetRequiredService<IMeterFactory>(), ResilientCacheMetrics.MeterName, ResilientCacheMetrics.OperationsName);

        Assert.Null(Core.Guard.Run(Get, CacheTarget.CacheKey("k"), 0));
        Assert.Null(Core.Guard.Run(Get, CacheTarget.CacheKey("k"), 0));

        Assert.Equal(["error", "skipped"], operations.GetMeasurementSnapshot().Select(m => (string)m.Tags[ResilientCacheMetrics.OutcomeTag]!));
        Assert.All(operations.GetMeasurementSnapshot(), m => Assert.Equal("orders", m.Tags[ResilientCacheMetrics.CacheTag]));
    }

    [Fact]
    public void TheReplay_EvictsTagsThroughTheGivenDelegate()
    {
        _connection.Database = new FakeRedisDatabase().Database;
        Assert.Null(Core.Guard.Run(Get, CacheTarget.CacheKey("k"), 0));
        Core.Pending.Record(KeyKind.OutputCacheTag, "products");
        _time.Advance(_options.UnavailableWindow);

        Core.Outages.StartProbe(Core.Shards.Deployment);

        Assert.Equal(["products"], _evicted);
        Assert.True(Core.Availability.IsAvailable);
    }

    [Fact]
    public void Dispose_ReleasesCallersWaitingForAConnection()
    {
        var released = Core.Deployment.StoppedUsingRedis;

        Core.Dispose();

        Assert.True(released.IsCancellationRequested);
    }

    public void Dispose()
    {
        _core?.Dispose();
        _services.Dispose();
    }
}
