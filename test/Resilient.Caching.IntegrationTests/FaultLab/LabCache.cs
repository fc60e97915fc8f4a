using Microsoft.Extensions.Caching.Distributed;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;
using Resilient.Caching.Configuration;
using StackExchange.Redis;
using Xunit;

namespace Resilient.Caching.IntegrationTests.FaultLab;

/// <summary>
/// The resilient cache under test, built through dependency injection exactly as an application registers it (the
/// host is not started, so nothing connects before the first call), with the lab settings and its logs captured.
/// Every integration test that needs the cache alone builds it here.
/// </summary>
internal sealed class LabCache : IDisposable
{
    private readonly ServiceProvider _provider;

    /// <param name="configuration">The Redis connection string.</param>
    /// <param name="setup">Settings on top of the lab's.</param>
    /// <param name="environment">The flat environment variables the cache sees (none by default).</param>
    public LabCache(string configuration, Action<ResilientRedisCacheOptions>? setup = null, Func<string, string?>? environment = null)
    {
        var services = new ServiceCollection();
        services.AddLogging(b => b.SetMinimumLevel(LogLevel.Debug).AddProvider(new FakeLoggerProvider(Logs)));

        // The flat environment variables are process-wide and tests run in parallel: each cache gets its own view.
        services.AddSingleton(new EnvironmentVariables(environment ?? (_ => null)));
        services.AddResilientStackExchangeRedisCache(o =>
        {
            o.Configuration = configuration;
            o.OperationTimeout = Lab.OperationTimeout;
            o.ConnectTimeout = Lab.ConnectTimeout;
            o.UnavailableWindow = Lab.Window;
            o.TcpKeepAlive.Idle = TimeSpan.FromSeconds(2);
            o.TcpKeepAlive.Interval = TimeSpan.FromSeconds(1);
            o.TcpKeepAlive.Count = 2;
            setup?.Invoke(o);
        });
        _provider = services.BuildServiceProvider(new ServiceProviderOptions { ValidateOnBuild = true });
        Cache = (ResilientDistributedCache)_provider.GetRequiredService<IDistributedCache>();
        Availability = _provider.GetRequiredService<CacheAvailability>();
        Services = _provider.GetRequiredService<ResilientRedisCacheServices>();
    }

    public FakeLogCollector Logs { get; } = new();

    public ResilientDistributedCache Cache { get; }

    public CacheAvailability Availability { get; }

    internal ResilientRedisCacheServices Services { get; }

    /// <summary>The multiplexer the cache currently uses (connecting first if there is none).</summary>
    public async Task<IConnectionMultiplexer> GetMultiplexerAsync()
    {
        Assert.True(await Services.Connection.WaitReadyAsync(TimeSpan.FromSeconds(10), Lab.Ct), $"no connection within 10 s.\n{DescribeLogs()}");
        return await Services.Connection.GetMultiplexerAsync();
    }

    /// <summary>A position in the log, to count only what was logged after it.</summary>
    public int LogMark() => Logs.GetSnapshot().Count;

    /// <summary>How many records with this event id were logged (optionally at exactly this level, after a mark).</summary>
    public int LogCount(int eventId, LogLevel? level = null, int since = 0) =>
        Logs.GetSnapshot().Skip(since).Count(r => r.Id.Id == eventId && (level is null || r.Level == level));

    /// <summary>A write and a read, so the connection is made before a scenario starts measuring.</summary>
    public async Task WarmUpAsync()
    {
        await Cache.SetAsync("lab:warm-up", Lab.Bytes("warm"), new DistributedCacheEntryOptions(), Lab.Ct);
        Assert.NotNull(await Cache.GetAsync("lab:warm-up", Lab.Ct));
        Assert.True(Availability.IsAvailable, $"the cache did not warm up.\n{DescribeLogs()}");
    }

    /// <summary>Completes when the window opens (<paramref name="available"/> false) or closes (true), whichever is asked.</summary>
    public async Task WaitForAvailabilityAsync(bool available, TimeSpan timeout)
    {
        var changed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        void OnChanged(bool now)
        {
            if (now == available)
            {
                changed.TrySetResult();
            }
        }

        Availability.Changed += OnChanged;
        try
        {
            if (Availability.IsOutage == available)
            {
                await changed.Task.WaitAsync(timeout, Lab.Ct);
            }
        }
        finally
        {
            Availability.Changed -= OnChanged;
        }
    }

    public string DescribeLogs() =>
        string.Join('\n', Logs.GetSnapshot().Select(r => $"{r.Timestamp:HH:mm:ss.fff} {r.Level} [{r.Id.Id}] {r.Message}"));

    public void Dispose() => _provider.Dispose();
}
