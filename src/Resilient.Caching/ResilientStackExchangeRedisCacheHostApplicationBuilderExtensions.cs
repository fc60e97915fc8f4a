using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.Metrics;
using Microsoft.Extensions.Options;
using Resilient.Caching;
using Resilient.Caching.Configuration;
using Resilient.Caching.Diagnostics;

namespace Microsoft.Extensions.Hosting;

/// <summary>
/// One line for hosts, in the manner of .NET Aspire's client integrations: the connection string from
/// <c>ConnectionStrings:{name}</c> (what an Aspire AppHost injects as <c>ConnectionStrings__{name}</c>), the settings
/// from the section <c>ResilientCaching:{name}</c>, and the health check and the meter switched on unless that
/// section says otherwise. The methods have the names of the service-collection registrations they wrap
/// (<c>services.AddResilientStackExchangeRedisCache</c>, <c>services.AddKeyedResilientStackExchangeRedisCache</c>).
/// </summary>
public static class ResilientStackExchangeRedisCacheHostApplicationBuilderExtensions
{
    /// <summary>The root of the settings sections: <c>ResilientCaching:{connectionName}</c>.</summary>
    public const string SettingsSectionRoot = "ResilientCaching";

    private const string DisableHealthChecksKey = "DisableHealthChecks";
    private const string DisableMetricsKey = "DisableMetrics";
    private static readonly string[] s_switches = [DisableHealthChecksKey, DisableMetricsKey];

    /// <summary>
    /// Adds the resilient Redis <see cref="Caching.Distributed.IDistributedCache"/> (the application's unkeyed one) for
    /// the connection <paramref name="connectionName"/>, with its health check (<c>"redis-cache"</c>) and its meter
    /// enabled for every metrics listener, OpenTelemetry's included.
    /// </summary>
    /// <remarks>
    /// Precedence, lowest first: the section <c>ResilientCaching:{connectionName}</c> (the same keys as the
    /// <c>"Redis"</c> section of <c>AddResilientStackExchangeRedisCache</c>, plus <c>DisableHealthChecks</c> and
    /// <c>DisableMetrics</c>), the connection string <c>ConnectionStrings:{connectionName}</c>, the delegate, the flat
    /// environment variables.
    /// </remarks>
    /// <param name="builder">The host builder.</param>
    /// <param name="connectionName">The name of the connection string, e.g. <c>"cache"</c>.</param>
    /// <param name="setupAction">Optional code configuration, applied after the configuration.</param>
    public static void AddResilientStackExchangeRedisCache(this IHostApplicationBuilder builder, string connectionName, Action<ResilientRedisCacheOptions>? setupAction = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentException.ThrowIfNullOrEmpty(connectionName);

        var section = Configure(builder, Options.Options.DefaultName, connectionName, setupAction);
        builder.Services.AddResilientRedisCacheCore().UseResilientDistributedCache();
        if (!section.GetValue<bool>(DisableHealthChecksKey))
        {
            builder.Services.AddHealthChecks().AddResilientStackExchangeRedisCache();
        }

        EnableMetrics(builder, section);
    }

    /// <summary>
    /// Adds a keyed resilient Redis cache (<c>[FromKeyedServices("{serviceKey}")] IDistributedCache</c>) for the
    /// connection <paramref name="serviceKey"/>, which is also its service key and cache name, with its health check
    /// (<c>"redis-cache-{serviceKey}"</c>) and the meter.
    /// </summary>
    /// <remarks>
    /// Settings as for <see cref="AddResilientStackExchangeRedisCache(IHostApplicationBuilder, string, Action{ResilientRedisCacheOptions}?)"/>,
    /// from <c>ResilientCaching:{serviceKey}</c> and <c>ConnectionStrings:{serviceKey}</c>.
    /// </remarks>
    /// <param name="builder">The host builder.</param>
    /// <param name="serviceKey">The service key, which is also the name of the connection string and the cache name.</param>
    /// <param name="setupAction">Optional code configuration, applied after the configuration.</param>
    public static void AddKeyedResilientStackExchangeRedisCache(this IHostApplicationBuilder builder, string serviceKey, Action<ResilientRedisCacheOptions>? setupAction = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentException.ThrowIfNullOrEmpty(serviceKey);

        var section = Configure(builder, serviceKey, serviceKey, setupAction);
        builder.Services.AddKeyedResilientRedisCacheCore(serviceKey);
        if (!section.GetValue<bool>(DisableHealthChecksKey))
        {
            builder.Services.AddHealthChecks().AddKeyedResilientStackExchangeRedisCache(serviceKey);
        }

        EnableMetrics(builder, section);
    }

    private static IConfigurationSection Configure(IHostApplicationBuilder builder, string optionsName, string connectionName, Action<ResilientRedisCacheOptions>? setupAction)
    {
        var configuration = builder.Configuration;
        var section = configuration.GetSection($"{SettingsSectionRoot}:{connectionName}");
        builder.Services.AddRegistrationLayers(
            optionsName,
            new ResilientRedisCacheOptionsSetup.FromSection(section, s_switches).Configure,
            options =>
            {
                // Read when the options are built, so that configuration added after this call counts.
                if (configuration.GetConnectionString(connectionName) is { Length: > 0 } connectionString)
                {
                    options.Configuration = connectionString;
                    options.Sources[ResilientRedisCacheOptionsSetup.ConfigurationKey] = $"connection string 'ConnectionStrings:{connectionName}'";
                }
            },
            setupAction is null ? null : new ResilientRedisCacheOptionsSetup.FromDelegate(setupAction).Configure);
        return section;
    }

    private static void EnableMetrics(IHostApplicationBuilder builder, IConfigurationSection section)
    {
        // Every listener, OpenTelemetry's among them (WithMetrics honours these rules): no AddMeter needed.
        if (!section.GetValue<bool>(DisableMetricsKey))
        {
            builder.Services.AddMetrics(metrics => metrics.EnableMetrics(ResilientCacheMetrics.MeterName));
        }
    }
}
