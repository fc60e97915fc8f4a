using Microsoft.Extensions.Diagnostics.HealthChecks;
using Resilient.Caching;
using Resilient.Caching.Diagnostics;

namespace Microsoft.Extensions.DependencyInjection;

/// <content>The health check of a keyed cache.</content>
public static partial class ResilientStackExchangeRedisCacheHealthChecksBuilderExtensions
{
    /// <summary>
    /// Adds the health check of the keyed cache <paramref name="serviceKey"/>
    /// (<c>services.AddKeyedResilientStackExchangeRedisCache(serviceKey, ...)</c>, which must be called too): Healthy
    /// while its Redis answers a PING, Degraded while its unavailable window is open, on its own connection and window.
    /// </summary>
    /// <param name="builder">The health checks builder.</param>
    /// <param name="serviceKey">The key of the cache.</param>
    /// <param name="name">The name of the check; <c>"redis-cache-{serviceKey}"</c> by default.</param>
    /// <param name="tags">Tags to filter checks by (e.g. <c>"ready"</c>).</param>
    /// <returns>The <paramref name="builder"/>, for chaining.</returns>
    public static IHealthChecksBuilder AddKeyedResilientStackExchangeRedisCache(this IHealthChecksBuilder builder, string serviceKey, string? name = null, IEnumerable<string>? tags = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentException.ThrowIfNullOrEmpty(serviceKey);

        builder.Services.AddKeyedResilientRedisCacheCore(serviceKey);
        return builder.Add(new HealthCheckRegistration(
            name ?? $"redis-cache-{serviceKey}",
            sp => new ResilientRedisCacheHealthCheck(sp.GetRequiredKeyedService<ResilientRedisCacheServices>(serviceKey)),
            HealthStatus.Degraded,
            tags));
    }
}
