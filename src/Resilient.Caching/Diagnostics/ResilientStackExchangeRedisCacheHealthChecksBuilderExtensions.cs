using Microsoft.Extensions.Diagnostics.HealthChecks;
using Resilient.Caching;
using Resilient.Caching.Diagnostics;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>
/// Adds the health check of the resilient Redis cache: the same name as the cache's registration
/// (<c>services.AddResilientStackExchangeRedisCache(...)</c>), on the health checks builder.
/// </summary>
public static partial class ResilientStackExchangeRedisCacheHealthChecksBuilderExtensions
{
    /// <summary>
    /// Adds a health check that is Healthy while Redis answers a PING and Degraded (never Unhealthy: the application
    /// still serves) while the unavailable window is open, with the data <c>retry_after_seconds</c>,
    /// <c>outage_seconds</c>, <c>skipped_operations</c>, <c>outages</c> and <c>last_error</c>.
    /// </summary>
    /// <remarks>
    /// The PING uses the cache's connection and window: inside the window the check answers at once without calling
    /// Redis; otherwise it waits no longer than a cache operation may (<c>OperationTimeout</c> for a connection still
    /// being made, then <c>OperationTimeout</c> for the PING), and a failed PING opens the window for every consumer.
    /// Settings come from the cache's registration, <c>services.AddResilientStackExchangeRedisCache(...)</c> (or the host
    /// builder's <c>builder.AddResilientStackExchangeRedisCache(connectionName)</c>, which adds this check itself), which
    /// must be called too.
    /// </remarks>
    /// <param name="builder">The health checks builder.</param>
    /// <param name="name">The name of the check.</param>
    /// <param name="tags">Tags to filter checks by (e.g. <c>"ready"</c>).</param>
    /// <returns>The <paramref name="builder"/>, for chaining.</returns>
    public static IHealthChecksBuilder AddResilientStackExchangeRedisCache(this IHealthChecksBuilder builder, string name = "redis-cache", IEnumerable<string>? tags = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentException.ThrowIfNullOrEmpty(name);

        builder.Services.AddResilientRedisCacheCore();
        return builder.Add(new HealthCheckRegistration(
            name,
            static sp => new ResilientRedisCacheHealthCheck(sp.GetRequiredService<ResilientRedisCacheServices>()),
            HealthStatus.Degraded,
            tags));
    }
}
