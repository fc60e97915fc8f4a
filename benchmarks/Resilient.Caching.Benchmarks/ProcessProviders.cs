using Microsoft.Extensions.Caching.Distributed;
using Microsoft.Extensions.Caching.StackExchangeRedis;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using StackExchange.Redis;
using Resilient.Caching.Benchmarks.Shared;

namespace Resilient.Caching.Benchmarks;

/// <summary>
/// The providers of <c>--processes</c>: each runs alone in a process of its own, chosen by <see cref="ProviderVariable"/>
/// (and, for ours, set up only through what an application would set: the defaults or an environment variable).
/// </summary>
internal static class ProcessProviders
{
    /// <summary>Selects the provider of a benchmark process.</summary>
    public const string ProviderVariable = "BENCH_PROVIDER";

    /// <summary>The shared redis-server's connection string ("127.0.0.1:PORT").</summary>
    public const string RedisVariable = "BENCH_REDIS";

    /// <summary>The provider every ratio is taken against.</summary>
    public const string Stock = "stock";

    /// <summary>Every provider a run may name, in the order of the tables.</summary>
    public static IReadOnlyList<ProcessProvider> All { get; } =
    [
        new(Stock, "Stock RedisCache (AddStackExchangeRedisCache)", []),
        new("ours", "Resilient.Caching, defaults", []),
        new("ours-dt-off", "Resilient.Caching, REDIS_CACHE_DEDICATED_THREADS=false", [new("REDIS_CACHE_DEDICATED_THREADS", "false")]),
        new("ours-dt-on", "Resilient.Caching, REDIS_CACHE_DEDICATED_THREADS=true", [new("REDIS_CACHE_DEDICATED_THREADS", "true")]),

        // Diagnostics: the stock cache with one of our differences at a time (none sets DedicatedThreads).
        new("stock-factory", "Stock RedisCache over a ConnectionMultiplexerFactory (stock settings), as ours builds its inner cache", []),
        new("stock-our-config", "Stock RedisCache over a multiplexer with our connection settings (50 ms heartbeat, fail-fast backlog, socket tuning)", []),
        new("stock-our-config-hb1s", "As stock-our-config, with StackExchange.Redis's default 1 s heartbeat", []),
    ];

    /// <summary>The default selection: stock, ours as shipped, and ours with the process-wide switch off.</summary>
    public static string DefaultSelection => "stock,ours,ours-dt-off";

    /// <summary>
    /// Our settings' environment variables (REDIS_CACHE_*, TCP_KEEPALIVE_*): removed from every benchmark process
    /// (an exported one would change "defaults"), then a variant's own are set.
    /// </summary>
    public static bool IsOurSetting(string variable) =>
        variable.StartsWith("REDIS_CACHE_", StringComparison.Ordinal) || variable.StartsWith("TCP_KEEPALIVE_", StringComparison.Ordinal);

    public static ProcessProvider Find(string name) =>
        All.FirstOrDefault(p => p.Name.Equals(name, StringComparison.OrdinalIgnoreCase))
        ?? throw new ArgumentException($"Unknown provider '{name}'; known: {string.Join(", ", All.Select(p => p.Name))}.", nameof(name));

    public static IReadOnlyList<ProcessProvider> Parse(string selection)
    {
        var providers = selection.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(Find).Distinct().ToList();
        if (providers.Count == 0 || providers[0].Name != Stock)
        {
            throw new ArgumentException($"--providers must start with '{Stock}' (the baseline of every ratio).", nameof(selection));
        }

        return providers;
    }

    /// <summary>Builds the provider as an application does, over <paramref name="configuration"/>.</summary>
    public static OpenedProvider Open(string name, string configuration)
    {
        if (name == Stock)
        {
            var stock = CacheProviders.CreateStock(configuration);
            return new OpenedProvider(stock, stock, null);
        }

        if (name.StartsWith(Stock + "-", StringComparison.Ordinal))
        {
            var settings = name switch
            {
                "stock-factory" => ConfigurationOptions.Parse(configuration),
                "stock-our-config" => Connection.ConnectionSettings.Build(new ResilientRedisCacheOptions { Configuration = configuration }, NullLogger.Instance),
                "stock-our-config-hb1s" => WithHeartbeat(Connection.ConnectionSettings.Build(new ResilientRedisCacheOptions { Configuration = configuration }, NullLogger.Instance), TimeSpan.FromSeconds(1)),
                _ => throw new ArgumentException($"Unknown provider '{name}'.", nameof(name)),
            };
            // Connected as ours connects (asynchronously), before the first call.
            var multiplexer = ConnectionMultiplexer.ConnectAsync(settings).GetAwaiter().GetResult();
            var cache = new RedisCache(Options.Create(new RedisCacheOptions { ConnectionMultiplexerFactory = () => Task.FromResult<IConnectionMultiplexer>(multiplexer) }));
            return new OpenedProvider(cache, new Both(cache, multiplexer), null);
        }

        _ = Find(name);
        var ours = CacheProviders.CreateResilient(configuration);
        return new OpenedProvider(ours.Cache, ours, ours.Availability);
    }

    private static ConfigurationOptions WithHeartbeat(ConfigurationOptions options, TimeSpan interval)
    {
        options.HeartbeatInterval = interval;
        return options;
    }

    private sealed class Both(IDisposable first, IDisposable second) : IDisposable
    {
        public void Dispose()
        {
            first.Dispose();
            second.Dispose();
        }
    }
}

/// <summary>A provider of <c>--processes</c>: its name (job id), what it is, and the environment variables it runs with.</summary>
internal sealed record ProcessProvider(string Name, string Description, IReadOnlyList<KeyValuePair<string, string>> Environment)
{
    public bool IsOurs => Name != ProcessProviders.Stock;
}

/// <summary>An opened provider, what to dispose, and (for ours) the window, which must stay closed in a healthy run.</summary>
internal sealed class OpenedProvider(IDistributedCache cache, IDisposable owner, CacheAvailability? availability) : IDisposable
{
    public IDistributedCache Cache { get; } = cache;

    public CacheAvailability? Availability { get; } = availability;

    public void Dispose() => owner.Dispose();
}
