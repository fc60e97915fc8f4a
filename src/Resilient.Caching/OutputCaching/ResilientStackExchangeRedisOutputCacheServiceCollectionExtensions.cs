using Microsoft.AspNetCore.OutputCaching;
using Microsoft.AspNetCore.OutputCaching.StackExchangeRedis;
using Resilient.Caching;
using Resilient.Caching.OutputCaching;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Registers the resilient Redis <see cref="IOutputCacheStore"/>: the drop-in replacement of <c>AddStackExchangeRedisOutputCache</c>.</summary>
public static class ResilientStackExchangeRedisOutputCacheServiceCollectionExtensions
{
    /// <summary>
    /// Stores output-cached responses in Redis through Microsoft's Redis output-cache store, behind the unavailable
    /// window of the resilient distributed cache: the same connection (with its keepalive and timeouts), the same
    /// window and the same settings, so one outage is detected once and skipped by both. While Redis is unavailable
    /// pages are produced afresh and tag evictions are skipped (logged at Warning with the tag).
    /// </summary>
    /// <remarks>
    /// The connection and every resilience setting come from <c>AddResilientStackExchangeRedisCache(...)</c>,
    /// which must be called too; without it start-up fails saying so. Wins over any
    /// <see cref="IOutputCacheStore"/> registered before (e.g. by <c>AddOutputCache</c>), as the stock extension does;
    /// call <c>AddOutputCache</c> as usual for the middleware and policies.
    /// </remarks>
    /// <param name="services">The service collection.</param>
    /// <param name="setupAction">
    /// Optional: sets <see cref="RedisOutputCacheOptions.InstanceName"/> (the key prefix, by default the cache's
    /// <c>InstanceName</c>) or <see cref="RedisOutputCacheOptions.ProfilingSession"/>. Setting a connection here
    /// (<c>Configuration</c>, <c>ConfigurationOptions</c>, <c>ConnectionMultiplexerFactory</c>) is an error.
    /// </param>
    /// <returns>The <paramref name="services"/>, for chaining.</returns>
    public static IServiceCollection AddResilientStackExchangeRedisOutputCache(this IServiceCollection services, Action<RedisOutputCacheOptions>? setupAction = null)
    {
        ArgumentNullException.ThrowIfNull(services);

        services.AddResilientRedisCacheCore();
        services.GetRegistrations().OutputCacheStore = true;

        // Appended, as the stock extension does: it wins over earlier stores while GetServices still lists them.
        services.AddSingleton(new OutputCacheSetup(setupAction));
        services.AddSingleton<IOutputCacheStore>(static sp => sp.GetRequiredService<ResilientRedisCacheServices>().OutputCacheStore);
        return services;
    }
}
