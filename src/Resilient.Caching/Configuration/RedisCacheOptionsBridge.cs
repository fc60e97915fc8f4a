using Microsoft.Extensions.Caching.StackExchangeRedis;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

namespace Resilient.Caching.Configuration;

/// <summary>
/// Honours what applications, libraries and hosts write for the stock provider: <c>services.Configure&lt;RedisCacheOptions&gt;</c>,
/// <c>IConfigureOptions</c> / <c>IPostConfigureOptions</c> / <c>IValidateOptions&lt;RedisCacheOptions&gt;</c> (named ones for
/// the keyed caches) apply to <see cref="ResilientRedisCacheOptions"/>, which derives from <see cref="RedisCacheOptions"/>;
/// and <c>IOptions&lt;RedisCacheOptions&gt;</c> (or the monitor's and snapshot's named options) are the settings in force.
/// </summary>
/// <remarks>
/// As with the stock provider, where a <c>RedisCacheOptions</c> configuration was registered counts: one registered after
/// <c>AddResilientStackExchangeRedisCache(...)</c> overrides what the registration's section and delegate set, one
/// registered before it is overridden by them. Each registration leaves a no-op <see cref="RegistrationPoint"/> among the
/// <c>RedisCacheOptions</c> configuration, which is how the factory interleaves the two lists. Between two registrations the
/// <c>RedisCacheOptions</c> configuration runs before the <c>ResilientRedisCacheOptions</c> one (the derived type is the
/// more specific). Post-configuration of <c>RedisCacheOptions</c> runs before ours, so the flat environment variables
/// still win.
/// </remarks>
internal static class RedisCacheOptionsBridge
{
    internal const string Source = "a RedisCacheOptions configuration (services.Configure<RedisCacheOptions>, an IConfigureOptions<RedisCacheOptions>)";
    internal const string PostSource = "a RedisCacheOptions post-configuration (services.PostConfigure<RedisCacheOptions>, an IPostConfigureOptions<RedisCacheOptions>)";

    /// <summary>Makes the options factories ours (once per service collection).</summary>
    public static void AddRedisCacheOptionsBridge(this IServiceCollection services)
    {
        services.TryAddTransient<IOptionsFactory<ResilientRedisCacheOptions>, Factory>();
        services.TryAddTransient<IOptionsFactory<RedisCacheOptions>, BaseFactory>();

        // The very instance the unkeyed cache uses, so that what a library reads is what the cache does.
        services.TryAddSingleton<IOptions<RedisCacheOptions>>(static sp =>
            new OptionsWrapper<RedisCacheOptions>(sp.GetRequiredService<IOptions<ResilientRedisCacheOptions>>().Value));
    }

    /// <summary>
    /// Registers one registration's layers (section, connection string, delegate: null ones skipped) for the options
    /// <paramref name="name"/>, behind a point that marks its place among the <c>RedisCacheOptions</c> configuration.
    /// </summary>
    public static void AddRegistrationLayers(this IServiceCollection services, string name, params ReadOnlySpan<Action<ResilientRedisCacheOptions>?> layers)
    {
        var point = new RegistrationPoint();
        services.AddSingleton<IConfigureOptions<RedisCacheOptions>>(point);
        foreach (var layer in layers)
        {
            if (layer is not null)
            {
                services.AddSingleton<IConfigureOptions<ResilientRedisCacheOptions>>(new RegisteredLayer(point, name, layer));
            }
        }
    }

    /// <summary>
    /// Our configuration in registration order with the <c>RedisCacheOptions</c> configuration placed around each
    /// registration's layers where it was registered.
    /// </summary>
    internal static List<IConfigureOptions<ResilientRedisCacheOptions>> Merge(
        IEnumerable<IConfigureOptions<ResilientRedisCacheOptions>> setups, IEnumerable<IConfigureOptions<RedisCacheOptions>> baseSetups)
    {
        var bases = baseSetups.ToList();
        var merged = new List<IConfigureOptions<ResilientRedisCacheOptions>>();
        var sincePoint = new List<IConfigureOptions<ResilientRedisCacheOptions>>();
        var next = 0;
        foreach (var setup in setups)
        {
            if (setup is not RegisteredLayer layer)
            {
                sincePoint.Add(setup);
                continue;
            }

            var at = bases.IndexOf(layer.Point, next);
            if (at >= 0)
            {
                AddBases(bases, next, at, merged);
                next = at + 1;
            }

            merged.AddRange(sincePoint);
            sincePoint.Clear();
            merged.Add(layer);
        }

        AddBases(bases, next, bases.Count, merged);
        merged.AddRange(sincePoint);
        return merged;
    }

    private static void AddBases(List<IConfigureOptions<RedisCacheOptions>> bases, int from, int to, List<IConfigureOptions<ResilientRedisCacheOptions>> merged)
    {
        for (var i = from; i < to; i++)
        {
            if (bases[i] is not RegistrationPoint)
            {
                merged.Add(new BaseSetup(bases[i]));
            }
        }
    }

    /// <summary>A registration's place among the <c>RedisCacheOptions</c> configuration; configures nothing.</summary>
    internal sealed class RegistrationPoint : IConfigureOptions<RedisCacheOptions>
    {
        public void Configure(RedisCacheOptions options)
        {
        }
    }

    /// <summary>One layer of a registration, for the options of one name.</summary>
    internal sealed class RegisteredLayer(RegistrationPoint point, string optionsName, Action<ResilientRedisCacheOptions> configure) : IConfigureNamedOptions<ResilientRedisCacheOptions>
    {
        public RegistrationPoint Point => point;

        public void Configure(string? name, ResilientRedisCacheOptions options)
        {
            if (string.Equals(name ?? Options.DefaultName, optionsName, StringComparison.Ordinal))
            {
                configure(options);
            }
        }

        public void Configure(ResilientRedisCacheOptions options) => Configure(Options.DefaultName, options);
    }

    /// <summary>A <c>RedisCacheOptions</c> configuration applied to ours, the way the options factory applies it to its own type.</summary>
    private sealed class BaseSetup(IConfigureOptions<RedisCacheOptions> inner) : IConfigureNamedOptions<ResilientRedisCacheOptions>
    {
        public void Configure(string? name, ResilientRedisCacheOptions options)
        {
            if (inner is IConfigureNamedOptions<RedisCacheOptions> named)
            {
                ResilientRedisCacheOptionsSetup.Attribute(options, Source, o => named.Configure(name, o));
            }
            else if (name is null || name == Options.DefaultName)
            {
                ResilientRedisCacheOptionsSetup.Attribute(options, Source, inner.Configure);
            }
        }

        public void Configure(ResilientRedisCacheOptions options) => Configure(Options.DefaultName, options);
    }

    private sealed class BasePostSetup(IPostConfigureOptions<RedisCacheOptions> inner) : IPostConfigureOptions<ResilientRedisCacheOptions>
    {
        public void PostConfigure(string? name, ResilientRedisCacheOptions options) =>
            ResilientRedisCacheOptionsSetup.Attribute(options, PostSource, o => inner.PostConfigure(name, o));
    }

    private sealed class BaseValidation(IValidateOptions<RedisCacheOptions> inner) : IValidateOptions<ResilientRedisCacheOptions>
    {
        public ValidateOptionsResult Validate(string? name, ResilientRedisCacheOptions options) => inner.Validate(name, options);
    }

    /// <summary>Builds <see cref="ResilientRedisCacheOptions"/> from its own configuration and from the <c>RedisCacheOptions</c> one.</summary>
    private sealed class Factory(
        IEnumerable<IConfigureOptions<ResilientRedisCacheOptions>> setups,
        IEnumerable<IPostConfigureOptions<ResilientRedisCacheOptions>> postConfigures,
        IEnumerable<IValidateOptions<ResilientRedisCacheOptions>> validations,
        IEnumerable<IConfigureOptions<RedisCacheOptions>> baseSetups,
        IEnumerable<IPostConfigureOptions<RedisCacheOptions>> basePostConfigures,
        IEnumerable<IValidateOptions<RedisCacheOptions>> baseValidations)
        : OptionsFactory<ResilientRedisCacheOptions>(
            Merge(setups, baseSetups),
            [.. basePostConfigures.Select(static p => new BasePostSetup(p)), .. postConfigures],
            [.. validations, .. baseValidations.Select(static v => new BaseValidation(v))]);

    /// <summary><c>RedisCacheOptions</c> of a name are the <see cref="ResilientRedisCacheOptions"/> of that name.</summary>
    private sealed class BaseFactory(IOptionsFactory<ResilientRedisCacheOptions> factory) : IOptionsFactory<RedisCacheOptions>
    {
        public RedisCacheOptions Create(string name) => factory.Create(name);
    }
}
