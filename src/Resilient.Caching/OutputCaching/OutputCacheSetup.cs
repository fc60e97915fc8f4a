using Microsoft.AspNetCore.OutputCaching.StackExchangeRedis;

namespace Resilient.Caching.OutputCaching;

/// <summary>
/// The application's options for the resilient output-cache store, kept from its registration so that the
/// registration's services know, when they are built, where the store keeps its keys.
/// </summary>
/// <param name="setupAction">The application's delegate, if any.</param>
internal sealed class OutputCacheSetup(Action<RedisOutputCacheOptions>? setupAction)
{
    /// <summary>
    /// The stock store's options over the cache's settings: the application's delegate may choose the key prefix and
    /// the profiler, not a connection of its own. Runs the delegate once per call.
    /// </summary>
    public RedisOutputCacheOptions Options(ResilientRedisCacheOptions cache)
    {
        var template = new RedisOutputCacheOptions
        {
            InstanceName = cache.InstanceName,
            ProfilingSession = cache.ProfilingSession,
        };
        setupAction?.Invoke(template);
        if (template.Configuration is not null || template.ConfigurationOptions is not null || template.ConnectionMultiplexerFactory is not null)
        {
            throw new InvalidOperationException(
                "AddResilientStackExchangeRedisOutputCache shares the connection of AddResilientStackExchangeRedisCache: set Configuration, "
                + "ConfigurationOptions or ConnectionMultiplexerFactory there, not in the output-cache options.");
        }

        return template;
    }
}
