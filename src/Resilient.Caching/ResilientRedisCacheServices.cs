using System.Diagnostics.Metrics;
using System.Text;
using Microsoft.Extensions.Caching.Distributed;
using Microsoft.Extensions.Caching.StackExchangeRedis;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Resilient.Caching.Configuration;
using Resilient.Caching.Connection;
using Resilient.Caching.Diagnostics;
using Resilient.Caching.Recovery;

namespace Resilient.Caching;

/// <summary>
/// What one registration shares between its consumers (the distributed cache, the output-cache store, the
/// health check): the settings, the connection, the window, the meter and the guard. One outage is detected
/// once, logged once and skipped everywhere.
/// </summary>
internal sealed class ResilientRedisCacheServices : IDisposable
{
    /// <param name="services">The application's services.</param>
    /// <param name="serviceKey">The service key of a keyed registration (its named options); null for the unkeyed one.</param>
    public ResilientRedisCacheServices(IServiceProvider services, string? serviceKey = null)
    {
        Name = serviceKey ?? CacheAvailability.DefaultName;
        Options = serviceKey is null
            ? services.GetRequiredService<IOptions<ResilientRedisCacheOptions>>().Value
            : services.GetRequiredService<IOptionsMonitor<ResilientRedisCacheOptions>>().Get(serviceKey);
        TimeProvider = services.GetService<TimeProvider>() ?? TimeProvider.System;
        LoggerFactory = services.GetService<ILoggerFactory>() ?? Microsoft.Extensions.Logging.Abstractions.NullLoggerFactory.Instance;
        Logger = new CacheNameLogger(LoggerFactory.CreateLogger<ResilientDistributedCache>(), Name);
        Controller = new WindowController(TimeProvider, Options.UnavailableWindow, Options.OperationTimeout);
        // Waits for the network run on real time: an application's test clock must not stop a connect or a PING from timing out.
        Connection = new RedisConnection(Options, Logger, TimeProvider.System);
        services.GetService<ResilientRedisConnections>()?.Track(Name, Connection);
        Pending = new PendingInvalidations(Options.MaxPendingInvalidations, Options.InstanceName, Options.PurgeInstanceOnOverflow, MadeUpMissLifetime, TimeProvider);
        Metrics = new ResilientCacheMetrics(services.GetService<IMeterFactory>(), Controller, Pending, Name);
        var shards = new Topology.ShardMap(Options.InstanceName, Controller,
            availabilityChanged => new WindowController(TimeProvider, Options.UnavailableWindow, Options.OperationTimeout, availabilityChanged));
        Metrics.Shards = shards;
        Guard = new CacheGuard(Controller, Connection, Metrics, Logger, Options.IgnoreExceptions, Options.LogIgnoredExceptions, Options.OperationTimeout,
            Pending, Options.InvalidateKeysReadDuringOutage, shards, Options.InstanceName);
        Guard.Availability.Name = Name;
        Connection.TopologyChanged += Guard.OnTopologyChanged;
        Connection.PrimaryConnectionFailed += Guard.OnPrimaryConnectionFailed;
    }

    /// <summary>Gets the cache's name: <c>"default"</c>, or the service key of a keyed registration.</summary>
    public string Name { get; }

    public ResilientRedisCacheOptions Options { get; }

    public TimeProvider TimeProvider { get; }

    public ILoggerFactory LoggerFactory { get; }

    public ILogger Logger { get; }

    public RedisConnection Connection { get; }

    public CacheAvailability Availability => Guard.Availability;

    internal WindowController Controller { get; }

    /// <summary>What the outages left pending, applied by the probe before Redis is used again.</summary>
    internal PendingInvalidations Pending { get; }

    /// <summary>How long a key read with a made-up miss stays marked (a request that read it has long ended by then).</summary>
    internal static TimeSpan MadeUpMissLifetime { get; } = TimeSpan.FromMinutes(5);

    public ResilientCacheMetrics Metrics { get; }

    public CacheGuard Guard { get; }

    /// <summary>
    /// The stock options for an inner stock component: our connection factory, the user's instance name and
    /// profiler. The inner component never builds a connection of its own.
    /// </summary>
    public RedisCacheOptions CreateInnerOptions() => new()
    {
        InstanceName = Options.InstanceName,
        ProfilingSession = Options.ProfilingSession,
        ConnectionMultiplexerFactory = Connection.GetMultiplexerAsync,
    };

    public ResilientDistributedCache CreateDistributedCache()
    {
        return new ResilientDistributedCache(
            Guard,
            Connection,
            () => new RedisCache(Microsoft.Extensions.Options.Options.Create(CreateInnerOptions())),
            disposeInner: !Connection.IsOwned);
    }

    /// <summary>Logs the effective settings once, with every password left out, and starts connecting.</summary>
    public void ReportAndWarm()
    {
        var text = new StringBuilder();
        text.Append("Redis=").Append(Connection.IsOwned ? Connection.RedactedConfiguration : "(application's ConnectionMultiplexerFactory)");
        foreach (var setting in Setting.All)
        {
            text.Append("; ").Append(setting.Name).Append('=').Append(Setting.Format(setting.Get(Options)))
                .Append(" (").Append(ResilientRedisCacheOptionsValidator.SourceOf(Options, setting)).Append(')');
        }

        Log.SettingsInForce(Logger, text.ToString());
        if (!Connection.IsOwned)
        {
            Log.SettingsNotApplied(Logger);
        }

        Connection.Warm();
    }

    public void Dispose()
    {
        Connection.Dispose();
        Metrics.Dispose();
        Controller.Dispose();
    }
}
