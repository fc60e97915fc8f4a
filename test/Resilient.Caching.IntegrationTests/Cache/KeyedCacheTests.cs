using System.Diagnostics.Metrics;
using Microsoft.Extensions.Caching.Distributed;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;
using Microsoft.Extensions.Options;
using Resilient.Caching.Configuration;
using Resilient.Caching.Diagnostics;
using Resilient.Caching.IntegrationTests.Infrastructure;
using Xunit;

namespace Resilient.Caching.IntegrationTests.Cache;

/// <summary>A session cache (unkeyed) and a data cache (keyed) on two Redis servers: separate settings, connections and windows.</summary>
public sealed class KeyedCacheTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task TwoCaches_OnTwoServers_EachWithItsOwnSettingsWindowHealthEventsMetricsAndLogScope()
    {
        await using var sessions = await RedisServer.StartNewAsync(cancellationToken: Ct);
        await using var data = await RedisServer.StartNewAsync(cancellationToken: Ct);
        var logs = new FakeLogCollector();
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Redis:Configuration"] = sessions.ConnectionString,
            ["Redis:InstanceName"] = "sessions:",
            ["DataRedis:Configuration"] = data.ConnectionString,
            ["DataRedis:InstanceName"] = "data:",
            ["DataRedis:OperationTimeout"] = "0.5",
            ["DataRedis:ConnectTimeout"] = "0.5",
            ["DataRedis:UnavailableWindow"] = "00:01:00",
        }).Build();
        var services = new ServiceCollection();
        services.AddLogging(b => b.SetMinimumLevel(LogLevel.Debug).AddProvider(new FakeLoggerProvider(logs)));
        services.AddMetrics();
        services.AddSingleton(new EnvironmentVariables(name => name == "TCP_KEEPALIVE_IDLE" ? "42" : null));
        services.AddResilientStackExchangeRedisCache(configuration.GetSection("Redis"));
        services.AddKeyedResilientStackExchangeRedisCache("data", configuration.GetSection("DataRedis"), o => o.TcpKeepAlive.Count = 3);
        services.AddHealthChecks().AddResilientStackExchangeRedisCache().AddKeyedResilientStackExchangeRedisCache("data");
        await using var provider = services.BuildServiceProvider(new ServiceProviderOptions { ValidateOnBuild = true, ValidateScopes = true });
        using var operations = new MetricCollector<long>(provider.GetRequiredService<IMeterFactory>(), ResilientCacheMetrics.MeterName, ResilientCacheMetrics.OperationsName);
        using var gauge = new MetricCollector<int>(provider.GetRequiredService<IMeterFactory>(), ResilientCacheMetrics.MeterName, ResilientCacheMetrics.AvailabilityName);

        var sessionCache = provider.GetRequiredService<IDistributedCache>();
        var dataCache = provider.GetRequiredKeyedService<IDistributedCache>("data");
        Assert.NotSame(sessionCache, dataCache);
        Assert.IsType<ResilientDistributedCache>(dataCache);
        Assert.Same(dataCache, provider.GetRequiredKeyedService<ResilientDistributedCache>("data"));

        // Each with its own settings: the section, the delegate, and the flat environment variables for both.
        var monitor = provider.GetRequiredService<IOptionsMonitor<ResilientRedisCacheOptions>>();
        var dataOptions = monitor.Get("data");
        var sessionOptions = provider.GetRequiredService<IOptions<ResilientRedisCacheOptions>>().Value;
        Assert.Equal(TimeSpan.FromSeconds(0.5), dataOptions.OperationTimeout);
        Assert.Equal(TimeSpan.FromMinutes(1), dataOptions.UnavailableWindow);
        Assert.Equal(3, dataOptions.TcpKeepAlive.Count);
        Assert.Equal(TimeSpan.FromSeconds(5), sessionOptions.OperationTimeout);
        Assert.Equal(9, sessionOptions.TcpKeepAlive.Count);
        Assert.Equal(TimeSpan.FromSeconds(42), dataOptions.TcpKeepAlive.Idle);
        Assert.Equal(TimeSpan.FromSeconds(42), sessionOptions.TcpKeepAlive.Idle);

        // Each on its own server, with its own key prefix.
        await sessionCache.SetStringAsync("s", "session value", Ct);
        await dataCache.SetStringAsync("d", "data value", Ct);
        Assert.Contains("sessions:s", await sessions.ExecuteAsync("KEYS", "*"), StringComparison.Ordinal);
        Assert.DoesNotContain("data:d", await sessions.ExecuteAsync("KEYS", "*"), StringComparison.Ordinal);
        Assert.Contains("data:d", await data.ExecuteAsync("KEYS", "*"), StringComparison.Ordinal);

        // The data server dies: only the data cache's window opens, and its event says which cache.
        var sessionAvailability = provider.GetRequiredService<CacheAvailability>();
        var dataAvailability = provider.GetRequiredKeyedService<CacheAvailability>("data");
        Assert.Equal("data", dataAvailability.Name);
        Assert.Equal("default", sessionAvailability.Name);
        var opened = new TaskCompletionSource<CacheWindowOpenedEventArgs>(TaskCreationOptions.RunContinuationsAsynchronously);
        dataAvailability.WindowOpened += (_, e) => opened.TrySetResult(e);
        sessionAvailability.WindowOpened += (_, e) => opened.TrySetException(new InvalidOperationException("the session cache's window opened"));
        data.Kill();
        Assert.Null(await dataCache.GetAsync("d", Ct));
        var open = await opened.Task.WaitAsync(TimeSpan.FromSeconds(15), Ct);
        Assert.Equal("data", open.CacheName);
        Assert.Equal(TimeSpan.FromMinutes(1), open.Window);
        Assert.False(dataAvailability.IsAvailable);
        Assert.True(sessionAvailability.IsAvailable);
        Assert.Equal("session value", await sessionCache.GetStringAsync("s", Ct));

        // One health entry per cache.
        var report = await provider.GetRequiredService<HealthCheckService>().CheckHealthAsync(Ct);
        Assert.Equal(HealthStatus.Healthy, report.Entries["redis-cache"].Status);
        Assert.Equal(HealthStatus.Degraded, report.Entries["redis-cache-data"].Status);

        // The cache's name on every measurement and in the scope of every line.
        var measurements = operations.GetMeasurementSnapshot();
        Assert.All(measurements, m => Assert.True(m.Tags.ContainsKey(ResilientCacheMetrics.CacheTag)));
        Assert.Contains(measurements, m => (string?)m.Tags[ResilientCacheMetrics.CacheTag] == "data" && (string?)m.Tags[ResilientCacheMetrics.OperationTag] == "set");
        Assert.Contains(measurements, m => (string?)m.Tags[ResilientCacheMetrics.CacheTag] == "default" && (string?)m.Tags[ResilientCacheMetrics.OperationTag] == "set");
        gauge.RecordObservableInstruments();
        var availability = gauge.GetMeasurementSnapshot().ToDictionary(m => (string)m.Tags[ResilientCacheMetrics.CacheTag]!, m => m.Value);
        Assert.Equal(1, availability["default"]);
        Assert.Equal(0, availability["data"]);
        var windowLine = Assert.Single(logs.GetSnapshot(), r => r.Id.Id == Log.IdWindowOpened);
        Assert.Contains(windowLine.Scopes, scope => scope is IEnumerable<KeyValuePair<string, object?>> pairs
            && pairs.Contains(new KeyValuePair<string, object?>(ResilientCacheMetrics.CacheTag, "data")));
    }

    [Fact]
    public void AKeyedCachesBadSetting_StopsStartUp_NamingTheCacheAndTheKey()
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["DataRedis:Configuration"] = "127.0.0.1:1",
            ["DataRedis:OperationTimout"] = "2",
        }).Build();
        var services = new ServiceCollection();
        services.AddSingleton(new EnvironmentVariables(_ => null));
        services.AddKeyedResilientStackExchangeRedisCache("data", configuration.GetSection("DataRedis"));
        using var provider = services.BuildServiceProvider();

        var error = Assert.Throws<OptionsValidationException>(() => provider.GetRequiredKeyedService<IDistributedCache>("data"));
        Assert.Contains("Redis cache 'data': 'DataRedis:OperationTimout' (configuration key) is not a setting", error.Message, StringComparison.Ordinal);

        // And no unkeyed cache appears from a keyed registration.
        Assert.Null(provider.GetService<IDistributedCache>());
    }
}
