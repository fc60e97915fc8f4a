using Microsoft.Extensions.Caching.Distributed;
using Microsoft.Extensions.Caching.StackExchangeRedis;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace Resilient.Caching.Benchmarks.Shared;

/// <summary>
/// Builds the providers under test the way an application does, so that benchmarks and the outage report
/// measure what users get: the stock <see cref="RedisCache"/> and ours resolved from dependency injection.
/// Both load the one StackExchange.Redis assembly the library references (3.4.35).
/// </summary>
internal static class CacheProviders
{
    /// <summary>The stock provider, exactly as <c>AddStackExchangeRedisCache(o => o.Configuration = …)</c> builds it.</summary>
    public static RedisCache CreateStock(string configuration) =>
        new(Options.Create(new RedisCacheOptions { Configuration = configuration }));

    /// <summary>Ours, through <c>AddResilientStackExchangeRedisCache</c>; the hosted start-up service is not run (no warm connect).</summary>
    public static ResilientProvider CreateResilient(string configuration, Action<ResilientRedisCacheOptions>? configure = null, TimeProvider? timeProvider = null)
    {
        var services = new ServiceCollection();
        if (timeProvider is not null)
        {
            services.AddSingleton(timeProvider);
        }

        services.AddResilientStackExchangeRedisCache(options =>
        {
            options.Configuration = configuration;
            configure?.Invoke(options);
        });
        return new ResilientProvider(services.BuildServiceProvider(new ServiceProviderOptions { ValidateOnBuild = true }));
    }
}

/// <summary>Our provider and the container that owns it (disposing it closes the multiplexer).</summary>
internal sealed class ResilientProvider(ServiceProvider services) : IDisposable
{
    public IDistributedCache Cache { get; } = services.GetRequiredService<IDistributedCache>();

    public IBufferDistributedCache BufferCache => (IBufferDistributedCache)Cache;

    public CacheAvailability Availability { get; } = services.GetRequiredService<CacheAvailability>();

    public void Dispose() => services.Dispose();
}
