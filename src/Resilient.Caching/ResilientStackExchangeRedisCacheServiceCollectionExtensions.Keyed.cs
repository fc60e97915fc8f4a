using Microsoft.Extensions.Caching.Distributed;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using Resilient.Caching;
using Resilient.Caching.Configuration;

namespace Microsoft.Extensions.DependencyInjection;

/// <content>Keyed caches: several Redis caches in one application, each with its own settings, connection and window.</content>
public static partial class ResilientStackExchangeRedisCacheServiceCollectionExtensions
{
    /// <summary>
    /// Adds a resilient Redis distributed cache resolved by its key
    /// (<c>[FromKeyedServices("data")] IDistributedCache</c>), configured in code: its own settings (the named options
    /// <paramref name="serviceKey"/>), connection, unavailable window, <see cref="CacheAvailability"/> (keyed too) and
    /// the cache name <paramref name="serviceKey"/> on its metrics, log scopes, events and traces. The flat environment
    /// variables (<c>REDIS_CACHE_SOCKET_TIMEOUT</c>, …) apply to every cache of the process, keyed or not.
    /// </summary>
    /// <param name="services">The service collection.</param>
    /// <param name="serviceKey">The key the cache is resolved by, and its name.</param>
    /// <param name="setupAction">Configures the settings.</param>
    /// <returns>The <paramref name="services"/>, for chaining.</returns>
    public static IServiceCollection AddKeyedResilientStackExchangeRedisCache(this IServiceCollection services, string serviceKey, Action<ResilientRedisCacheOptions> setupAction)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentException.ThrowIfNullOrEmpty(serviceKey);
        ArgumentNullException.ThrowIfNull(setupAction);

        services.AddRegistrationLayers(serviceKey, new ResilientRedisCacheOptionsSetup.FromDelegate(setupAction).Configure);
        return services.AddKeyedResilientRedisCacheCore(serviceKey);
    }

    /// <summary>
    /// Adds a resilient Redis distributed cache resolved by its key, bound from a configuration section (then the
    /// optional delegate, then the flat environment variables). Give each cache a section of its own, not nested in
    /// another cache's (e.g. <c>"Redis"</c> and <c>"DataRedis"</c>, or <c>"Caches:Session"</c> and <c>"Caches:Data"</c>):
    /// an unknown key in a cache's section stops start-up.
    /// </summary>
    /// <param name="services">The service collection.</param>
    /// <param name="serviceKey">The key the cache is resolved by, and its name.</param>
    /// <param name="configuration">The configuration section holding <c>Configuration</c>, <c>InstanceName</c> and the settings.</param>
    /// <param name="setupAction">Optional code configuration, applied after the section.</param>
    /// <returns>The <paramref name="services"/>, for chaining.</returns>
    public static IServiceCollection AddKeyedResilientStackExchangeRedisCache(
        this IServiceCollection services, string serviceKey, IConfiguration configuration, Action<ResilientRedisCacheOptions>? setupAction = null)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentException.ThrowIfNullOrEmpty(serviceKey);
        ArgumentNullException.ThrowIfNull(configuration);

        services.AddRegistrationLayers(
            serviceKey,
            new ResilientRedisCacheOptionsSetup.FromSection(configuration).Configure,
            setupAction is null ? null : new ResilientRedisCacheOptionsSetup.FromDelegate(setupAction).Configure);
        return services.AddKeyedResilientRedisCacheCore(serviceKey);
    }

    /// <summary>The shared pieces of one keyed cache, registered once per key however many consumers ask.</summary>
    internal static IServiceCollection AddKeyedResilientRedisCacheCore(this IServiceCollection services, string serviceKey)
    {
        foreach (var descriptor in services)
        {
            if (descriptor.IsKeyedService && descriptor.ServiceType == typeof(ResilientRedisCacheServices) && Equals(descriptor.ServiceKey, serviceKey))
            {
                return services;
            }
        }

        services.AddOptions<ResilientRedisCacheOptions>(serviceKey).ValidateOnStart();
        services.AddRedisCacheOptionsBridge();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IPostConfigureOptions<ResilientRedisCacheOptions>, ResilientRedisCacheOptionsSetup.FromEnvironment>());
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<ResilientRedisCacheOptions>, ResilientRedisCacheOptionsValidator>());
        services.TryAddSingleton(EnvironmentVariables.Process);
        services.TryAddSingleton<ResilientRedisConnections>();
        services.AddKeyedSingleton(serviceKey, static (sp, key) => new ResilientRedisCacheServices(sp, (string)key!));
        services.AddKeyedSingleton(serviceKey, static (sp, key) => sp.GetRequiredKeyedService<ResilientRedisCacheServices>(key).Availability);
        services.AddKeyedSingleton(serviceKey, static (sp, key) => sp.GetRequiredKeyedService<ResilientRedisCacheServices>(key).CreateDistributedCache());
        services.AddKeyedSingleton<IDistributedCache>(serviceKey, static (sp, key) => sp.GetRequiredKeyedService<ResilientDistributedCache>(key));
        services.AddSingleton<IHostedService>(sp => new KeyedResilientRedisCacheStartup(sp.GetRequiredKeyedService<ResilientRedisCacheServices>(serviceKey)));
        return services.AddTicketStoreSignOut();
    }
}
