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
using Resilient.Caching.Guard;
using Resilient.Caching.OutputCaching;
using Resilient.Caching.Storage;

namespace Resilient.Caching;

/// <summary>
/// What one registration shares between its consumers (the distributed cache, the output-cache store, the
/// health check): the settings, the connection and the <see cref="CacheCore"/> (windows, guard, outage lifecycle).
/// One outage is detected once, logged once and skipped everywhere.
/// </summary>
internal sealed class ResilientRedisCacheServices : IDisposable
{
    private readonly Lazy<ResilientOutputCacheStore>? _outputCacheStore;

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

        // Waits for the network run on real time: an application's test clock must not stop a connect or a PING from timing out.
        Connection = new RedisConnection(Options, Logger, TimeProvider.System);
        services.GetService<ResilientRedisConnections>()?.Track(Name, Connection);

        // The output-cache store (unkeyed registrations only) may keep its keys under a prefix of its own.
        var outputCache = serviceKey is null ? services.GetService<OutputCacheSetup>()?.Options(Options) : null;
        var keys = new StoredKeys(Options.InstanceName, outputCache?.InstanceName);
        if (outputCache is not null)
        {
            _outputCacheStore = new(() => new ResilientOutputCacheStore(this, outputCache));
        }

        Core = new CacheCore(Name, Options, keys, Connection, TimeProvider, Logger, services.GetService<IMeterFactory>(),
            _outputCacheStore is { } store ? (tag, cancellationToken) => store.Value.EvictTagInnerAsync(tag, cancellationToken) : null);
        Connection.TopologyChanged += Core.Outages.OnTopologyChanged;
        Connection.PrimaryConnectionFailed += Core.Outages.OnPrimaryConnectionLost;
        Connection.CredentialsRejected += Core.Outages.OnCredentialsRejected;
    }

    /// <summary>Gets the cache's name: <c>"default"</c>, or the service key of a keyed registration.</summary>
    public string Name { get; }

    public ResilientRedisCacheOptions Options { get; }

    public TimeProvider TimeProvider { get; }

    public ILoggerFactory LoggerFactory { get; }

    public ILogger Logger { get; }

    public RedisConnection Connection { get; }

    /// <summary>Gets the windows, the guard and the outage lifecycle.</summary>
    public CacheCore Core { get; }

    public CacheAvailability Availability => Core.Availability;

    public CacheGuard Guard => Core.Guard;

    /// <summary>Gets the output-cache store over this registration's connection and window.</summary>
    public ResilientOutputCacheStore OutputCacheStore => _outputCacheStore?.Value
        ?? throw new InvalidOperationException("The output-cache store was not registered: call AddResilientStackExchangeRedisOutputCache.");

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
        // Quiet first: what closing the connection makes fail is no outage.
        Core.Dispose();
        Connection.Dispose();
    }
}
