using Microsoft.AspNetCore.OutputCaching;
using Microsoft.Extensions.Caching.Distributed;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Resilient.Caching.OutputCaching;

namespace Resilient.Caching;

/// <summary>
/// At host start: log the settings in force, warn when a later registration took the place of ours, and start
/// connecting, without waiting for Redis.
/// </summary>
internal sealed class ResilientRedisCacheStartup(ResilientRedisCacheServices services, IServiceProvider provider) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken)
    {
        services.ReportAndWarm();
        WarnIfNotInUse(provider, services);
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    /// <summary>
    /// The last registration of a service wins. When it is not ours although ours was registered (e.g.
    /// <c>AddStackExchangeRedisCache</c> after <c>AddResilientStackExchangeRedisCache</c>), the application silently
    /// runs without the window while the settings line says it is in force: say which one won.
    /// </summary>
    internal static void WarnIfNotInUse(IServiceProvider provider, ResilientRedisCacheServices services)
    {
        if (provider.GetService<ResilientRegistrations>() is not { } registrations)
        {
            return;
        }

        // Resolved in a scope of its own: what the application's requests get, scoped registrations included.
        using var scope = provider.CreateScope();
        if (registrations.DistributedCache && Resolve<IDistributedCache>(scope.ServiceProvider) is { } cache and not ResilientDistributedCache)
        {
            Log.DistributedCacheNotInUse(services.Logger, cache.GetType().FullName ?? cache.GetType().Name);
        }

        if (registrations.OutputCacheStore && Resolve<IOutputCacheStore>(scope.ServiceProvider) is { } store and not ResilientOutputCacheStore)
        {
            Log.OutputCacheStoreNotInUse(services.Logger, store.GetType().FullName ?? store.GetType().Name);
        }
    }

    private static T? Resolve<T>(IServiceProvider provider)
        where T : class
    {
        try
        {
            return provider.GetService<T>();
        }
        catch (Exception exception) when (exception is InvalidOperationException or ObjectDisposedException)
        {
            // The winner cannot even be built: the application finds out on first use, with that error.
            return null;
        }
    }
}

/// <summary>Which of our registrations the application made (one instance per service collection).</summary>
internal sealed class ResilientRegistrations
{
    public bool DistributedCache { get; set; }

    public bool OutputCacheStore { get; set; }
}
