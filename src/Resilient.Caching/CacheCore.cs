using Microsoft.Extensions.Logging;
using Resilient.Caching.Connection;
using Resilient.Caching.Diagnostics;
using Resilient.Caching.Guard;
using Resilient.Caching.Outages;
using Resilient.Caching.Recovery;
using Resilient.Caching.Storage;
using Resilient.Caching.Topology;

namespace Resilient.Caching;

/// <summary>
/// The parts of one registration that decide about Redis, built in one place: the windows (one per shard), what an
/// outage leaves pending, the meter, the public view, the outage lifecycle and the guard every call goes through.
/// </summary>
/// <remarks>See <c>Internal.md</c> beside this file for how the parts fit.</remarks>
internal sealed class CacheCore : IDisposable
{
    /// <summary>How long a key read with a made-up miss stays marked (a request that read it has long ended by then).</summary>
    internal static readonly TimeSpan MadeUpMissLifetime = TimeSpan.FromMinutes(5);

    /// <param name="name">The cache's name: <c>"default"</c>, or the service key of a keyed registration.</param>
    /// <param name="options">The settings in force.</param>
    /// <param name="keys">Where the stock components keep their keys.</param>
    /// <param name="connection">The registration's connection.</param>
    /// <param name="timeProvider">The application's clock (the windows run on it).</param>
    /// <param name="logger">The cache's logger.</param>
    /// <param name="meterFactory">The application's meter factory, if any.</param>
    /// <param name="evictTag">Evicts an output-cache tag through the stock store, for the replay; null without an output-cache store.</param>
    /// <param name="isThreadPoolStarved">Whether the application's thread pool is starved now; the runtime's view when null.</param>
    public CacheCore(
        string name,
        ResilientRedisCacheOptions options,
        StoredKeys keys,
        IRedisConnection connection,
        TimeProvider timeProvider,
        ILogger logger,
        System.Diagnostics.Metrics.IMeterFactory? meterFactory = null,
        Func<string, CancellationToken, ValueTask>? evictTag = null,
        Func<bool>? isThreadPoolStarved = null)
    {
        Deployment = new WindowController(timeProvider, options.UnavailableWindow, options.OperationTimeout);
        Shards = new ShardMap(keys, Deployment,
            onAvailabilityChanged => new WindowController(timeProvider, options.UnavailableWindow, options.OperationTimeout, onAvailabilityChanged));
        Pending = new PendingInvalidations(options.MaxPendingInvalidations, keys, options.PurgeInstanceOnOverflow, MadeUpMissLifetime, timeProvider);
        Availability = new CacheAvailability(name, Shards, Pending);
        Metrics = new ResilientCacheMetrics(meterFactory, Shards, Pending, name);
        var notifications = new OutageNotifications(Availability, Metrics, logger, options.LogIgnoredExceptions);
        var judge = new FailureJudge(Shards, connection, isThreadPoolStarved, options.OperationTimeout);
        Outages = new OutageLifecycle(Shards, connection, judge, Pending, notifications, Metrics, options.OperationTimeout, evictTag);
        var ledger = new OutageLedger(Pending, options.InvalidateKeysReadDuringOutage, ResilientRedisCacheOptions.SplitPrefixes(options.InvalidateKeyPrefixesReadDuringOutage),
            keys, connection, Metrics, logger);
        Guard = new CacheGuard(
            Shards,
            connection,
            new ReadinessWait(connection, Deployment, options.OperationTimeout),
            judge,
            Outages,
            new ReplicaReader(Shards, keys, connection, ledger, Metrics, notifications, judge, options.OperationTimeout),
            ledger,
            Metrics,
            Availability,
            logger,
            new GuardSettings(options.IgnoreExceptions, options.LogIgnoredExceptions));
    }

    /// <summary>Gets the window of the whole deployment (every key outside a cluster).</summary>
    public WindowController Deployment { get; }

    public ShardMap Shards { get; }

    /// <summary>Gets what the outages left pending, applied by the probe before Redis is used again.</summary>
    public PendingInvalidations Pending { get; }

    public CacheAvailability Availability { get; }

    public ResilientCacheMetrics Metrics { get; }

    public OutageLifecycle Outages { get; }

    public CacheGuard Guard { get; }

    public void Dispose()
    {
        Outages.Stop();
        Metrics.Dispose();
        Deployment.Dispose();
    }
}
