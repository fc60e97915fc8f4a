using Microsoft.AspNetCore.Authentication.Cookies;
using Microsoft.Extensions.Caching.Distributed;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using Resilient.Caching;
using Resilient.Caching.Authentication;
using Resilient.Caching.Configuration;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Registers the resilient Redis <see cref="IDistributedCache"/>: the drop-in replacement of <c>AddStackExchangeRedisCache</c>.</summary>
public static partial class ResilientStackExchangeRedisCacheServiceCollectionExtensions
{
    /// <summary>
    /// Adds the resilient Redis distributed cache, configured in code. Flat environment variables
    /// (<c>TCP_KEEPALIVE_IDLE</c>, <c>REDIS_CACHE_SOCKET_TIMEOUT</c>, …) override what the delegate sets.
    /// </summary>
    /// <param name="services">The service collection.</param>
    /// <param name="setupAction">Configures the settings, as for <c>AddStackExchangeRedisCache</c>.</param>
    /// <returns>The <paramref name="services"/>, for chaining.</returns>
    public static IServiceCollection AddResilientStackExchangeRedisCache(this IServiceCollection services, Action<ResilientRedisCacheOptions> setupAction)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(setupAction);

        services.AddRegistrationLayers(Options.Options.DefaultName, new ResilientRedisCacheOptionsSetup.FromDelegate(setupAction).Configure);
        return services.AddResilientRedisCacheCore().UseResilientDistributedCache();
    }

    /// <summary>
    /// Adds the resilient Redis distributed cache, bound from a configuration section (e.g. <c>"Redis"</c> in
    /// appsettings.json), then the optional delegate, then the flat environment variables.
    /// </summary>
    /// <param name="services">The service collection.</param>
    /// <param name="configuration">The configuration section holding <c>Configuration</c>, <c>InstanceName</c> and the settings.</param>
    /// <param name="setupAction">Optional code configuration, applied after the section.</param>
    /// <returns>The <paramref name="services"/>, for chaining.</returns>
    public static IServiceCollection AddResilientStackExchangeRedisCache(
        this IServiceCollection services, IConfiguration configuration, Action<ResilientRedisCacheOptions>? setupAction = null)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(configuration);

        services.AddRegistrationLayers(
            Options.Options.DefaultName,
            new ResilientRedisCacheOptionsSetup.FromSection(configuration).Configure,
            setupAction is null ? null : new ResilientRedisCacheOptionsSetup.FromDelegate(setupAction).Configure);
        return services.AddResilientRedisCacheCore().UseResilientDistributedCache();
    }

    /// <summary>The shared pieces, registered once however many consumers (cache, output cache, health) ask.</summary>
    internal static IServiceCollection AddResilientRedisCacheCore(this IServiceCollection services)
    {
        services.AddOptions<ResilientRedisCacheOptions>().ValidateOnStart();
        services.AddRedisCacheOptionsBridge();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IPostConfigureOptions<ResilientRedisCacheOptions>, ResilientRedisCacheOptionsSetup.FromEnvironment>());
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<ResilientRedisCacheOptions>, ResilientRedisCacheOptionsValidator>());
        services.TryAddSingleton(EnvironmentVariables.Process);
        services.TryAddSingleton<ResilientRedisConnections>();
        services.TryAddSingleton(static sp => new ResilientRedisCacheServices(sp));
        services.TryAddSingleton(static sp => sp.GetRequiredService<ResilientRedisCacheServices>().Availability);
        services.TryAddSingleton(static sp => sp.GetRequiredService<ResilientRedisCacheServices>().CreateDistributedCache());
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IHostedService, ResilientRedisCacheStartup>());
        return services;
    }

    /// <summary>
    /// Makes ours the application's <see cref="IDistributedCache"/> the way the stock extension does: its descriptor is
    /// appended, so it wins over earlier ones (AddDistributedMemoryCache, AddStackExchangeRedisCache) while
    /// <c>GetServices&lt;IDistributedCache&gt;()</c> still lists them. Only the cache's own registration does this:
    /// adding the health check or the output cache must not swap the application's cache.
    /// </summary>
    internal static IServiceCollection UseResilientDistributedCache(this IServiceCollection services)
    {
        services.GetRegistrations().DistributedCache = true;
        services.AddSingleton<IDistributedCache>(static sp => sp.GetRequiredService<ResilientDistributedCache>());
        return services.AddTicketStoreSignOut();
    }

    /// <summary>
    /// Every sign-out of a cookie scheme with a ticket store also removes the cookie's ticket itself, through the
    /// application's store (<see cref="TicketStoreSignOut"/>): the handler removes it only when its read found it, and
    /// during an outage that read is a made-up miss. Once however many caches are registered.
    /// </summary>
    internal static IServiceCollection AddTicketStoreSignOut(this IServiceCollection services)
    {
        services.TryAddSingleton<SignOutTicketRemoval>();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IPostConfigureOptions<CookieAuthenticationOptions>, TicketStoreSignOut>());
        services.TryAdd(ServiceDescriptor.Transient(typeof(TicketStoreSignOutEvents<>), typeof(TicketStoreSignOutEvents<>)));
        return services;
    }

    /// <summary>What the application registered of ours, so that start-up can tell when a later registration won.</summary>
    internal static ResilientRegistrations GetRegistrations(this IServiceCollection services)
    {
        foreach (var descriptor in services)
        {
            if (descriptor.ServiceType == typeof(ResilientRegistrations) && descriptor.ImplementationInstance is ResilientRegistrations registrations)
            {
                return registrations;
            }
        }

        var created = new ResilientRegistrations();
        services.AddSingleton(created);
        return created;
    }
}
