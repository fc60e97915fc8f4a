using Microsoft.Extensions.Caching.Distributed;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;
using Resilient.Caching.Configuration;

namespace Resilient.Caching.IntegrationTests.Cache;

/// <summary>The resilient cache as an application gets it (dependency injection), with its logs captured.</summary>
internal sealed class ResilientCacheHost : IDisposable
{
    private readonly ServiceProvider _provider;

    public ResilientCacheHost(string configuration, Action<ResilientRedisCacheOptions>? setup = null, Func<string, string?>? environment = null)
    {
        var services = new ServiceCollection();
        services.AddLogging(b => b.SetMinimumLevel(LogLevel.Debug).AddProvider(new FakeLoggerProvider(Logs)));

        // The flat variables are process-wide and tests run in parallel: each test gets its own view of them.
        services.AddSingleton(new EnvironmentVariables(environment ?? (_ => null)));
        services.AddResilientStackExchangeRedisCache(o =>
        {
            o.Configuration = configuration;
            o.OperationTimeout = TimeSpan.FromMilliseconds(500);
            o.ConnectTimeout = TimeSpan.FromMilliseconds(500);
            o.UnavailableWindow = TimeSpan.FromSeconds(1.5);
            setup?.Invoke(o);
        });
        _provider = services.BuildServiceProvider(new ServiceProviderOptions { ValidateOnBuild = true });
        Cache = (ResilientDistributedCache)_provider.GetRequiredService<IDistributedCache>();
    }

    public FakeLogCollector Logs { get; } = new();

    public ResilientDistributedCache Cache { get; }

    public CacheAvailability Availability => Cache.Availability;

    internal ResilientRedisCacheServices Services => _provider.GetRequiredService<ResilientRedisCacheServices>();

    public void Dispose() => _provider.Dispose();
}
