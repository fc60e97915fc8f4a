using System.Globalization;
using Microsoft.Extensions.Caching.Hybrid;
using Microsoft.Extensions.DependencyInjection;
using Resilient.Caching.Benchmarks.Shared;
using ZiggyCreatures.Caching.Fusion;
using ZiggyCreatures.Caching.Fusion.Serialization.SystemTextJson;

namespace Resilient.Caching.OutageReport;

/// <summary>The settings every provider of one run is built with.</summary>
internal sealed record ProviderSettings(int TimeoutMs, int WindowSeconds, bool StockDefaults, int ValueBytes)
{
    public const string All = "stock,swallow,ours,hybrid,fusion";

    public static readonly TimeSpan SessionLifetime = TimeSpan.FromMinutes(20);

    public string StockTimeouts => StockDefaults
        ? "StackExchange.Redis defaults (connect/sync/async timeout 5 s)"
        : string.Create(CultureInfo.InvariantCulture, $"connectTimeout={TimeoutMs},syncTimeout={TimeoutMs},asyncTimeout={TimeoutMs}");

    public string OurSettings => string.Create(CultureInfo.InvariantCulture,
        $"OperationTimeout {TimeoutMs / 1000.0:0.###} s, ConnectTimeout {TimeoutMs / 1000.0:0.###} s, UnavailableWindow {WindowSeconds} s, other settings default");

    /// <summary>HybridCache's entry options: no L1, so every call reaches the distributed tier (the thing measured).</summary>
    public static HybridCacheEntryOptions HybridEntry => new()
    {
        Expiration = SessionLifetime,
        Flags = HybridCacheEntryFlags.DisableLocalCache,
    };

    public string HybridSettings => "AddStackExchangeRedisCache (stock, " + StockTimeouts + ") + AddHybridCache; entries: Expiration 20 min, Flags DisableLocalCache";

    /// <summary>
    /// FusionCache's entry options as its docs set them up for a distributed cache that may fail (timeouts, background
    /// distributed operations), with the memory level skipped (see <see cref="HybridEntry"/>) and fail-safe off.
    /// </summary>
    public FusionCacheEntryOptions FusionEntry => new()
    {
        Duration = SessionLifetime,
        SkipMemoryCacheRead = true,
        SkipMemoryCacheWrite = true,
        DistributedCacheSoftTimeout = TimeSpan.FromMilliseconds(TimeoutMs / 2.0),
        DistributedCacheHardTimeout = TimeSpan.FromMilliseconds(TimeoutMs),
        AllowBackgroundDistributedCacheOperations = true,
    };

    public string FusionSettings => string.Create(CultureInfo.InvariantCulture,
        $"AddStackExchangeRedisCache (stock, {StockTimeouts}) + AddFusionCache().WithRegisteredDistributedCache(), System.Text.Json serializer; DistributedCacheCircuitBreakerDuration {WindowSeconds} s; entries: Duration 20 min, DistributedCacheSoftTimeout {TimeoutMs / 2} ms, DistributedCacheHardTimeout {TimeoutMs} ms, AllowBackgroundDistributedCacheOperations, SkipMemoryCacheRead/Write, fail-safe off, auto-recovery {(new FusionCacheOptions().EnableAutoRecovery ? "on" : "off")} (default)");
}

/// <summary>One provider ready to run: its session API, how the report names it, its settings and what it noticed.</summary>
internal sealed record ProviderInstance(ISessionCache Cache, string Name, string Settings, Func<string?> Notes);

internal static class Providers
{
    /// <summary>
    /// Builds <paramref name="provider"/> over <paramref name="configuration"/> (endpoints only; the stock-based
    /// providers get the stock timeouts appended, ours its own settings).
    /// </summary>
    public static ProviderInstance Create(string provider, string configuration, ProviderSettings settings)
    {
        var stockConfiguration = settings.StockDefaults ? configuration : $"{configuration},{settings.StockTimeouts}";
        switch (provider)
        {
            case "stock":
                var stock = CacheProviders.CreateStock(stockConfiguration);
                return new(new DistributedSessionCache(stock, stock), "Stock RedisCache", settings.StockTimeouts, () => null);
            case "swallow":
                var swallowing = new SwallowingDistributedCache(CacheProviders.CreateStock(stockConfiguration));
                return new(new DistributedSessionCache(swallowing, swallowing), "Swallow-only wrapper", settings.StockTimeouts, () => null);
            case "ours":
                var ours = CacheProviders.CreateResilient(configuration, o =>
                {
                    o.OperationTimeout = TimeSpan.FromMilliseconds(settings.TimeoutMs);
                    o.ConnectTimeout = TimeSpan.FromMilliseconds(settings.TimeoutMs);
                    o.UnavailableWindow = TimeSpan.FromSeconds(settings.WindowSeconds);
                });
                var probeFailures = new System.Collections.Concurrent.ConcurrentQueue<string>();
                ours.Availability.WindowOpened += (_, e) =>
                {
                    if (e.IsProbeFailure)
                    {
                        probeFailures.Enqueue(e.Reason.Length > 160 ? e.Reason[..160] + "…" : e.Reason);
                    }
                };
                return new(new DistributedSessionCache(ours.Cache, ours), "Resilient.Caching", settings.OurSettings,
                    () => $"the unavailable window opened {ours.Availability.Outages} time(s); {probeFailures.Count} probe(s) failed and reopened it"
                        + (probeFailures.IsEmpty ? "." : $" ({string.Join("; ", probeFailures.Distinct())})."));
            case "hybrid":
                var hybridServices = new ServiceCollection();
                hybridServices.AddLogging();
                hybridServices.AddStackExchangeRedisCache(o => o.Configuration = stockConfiguration);
                hybridServices.AddHybridCache();
                var hybrid = hybridServices.BuildServiceProvider(new ServiceProviderOptions { ValidateOnBuild = true });
                return new(new HybridSessionCache(hybrid, LoadRun.SessionValue(settings.ValueBytes), ProviderSettings.HybridEntry),
                    "HybridCache (L2 only)", settings.HybridSettings, () => null);
            case "fusion":
                var fusionServices = new ServiceCollection();
                fusionServices.AddLogging();
                fusionServices.AddStackExchangeRedisCache(o => o.Configuration = stockConfiguration);
                fusionServices.AddFusionCache()
                    .WithOptions(o => o.DistributedCacheCircuitBreakerDuration = TimeSpan.FromSeconds(settings.WindowSeconds))
                    .WithDefaultEntryOptions(settings.FusionEntry)
                    .WithSerializer(new FusionCacheSystemTextJsonSerializer())
                    .WithRegisteredDistributedCache();
                var fusion = fusionServices.BuildServiceProvider(new ServiceProviderOptions { ValidateOnBuild = true });
                var opened = 0;
                fusion.GetRequiredService<IFusionCache>().Events.Distributed.CircuitBreakerChange += (_, e) =>
                {
                    if (!e.IsClosed)
                    {
                        Interlocked.Increment(ref opened);
                    }
                };
                return new(new FusionSessionCache(fusion, LoadRun.SessionValue(settings.ValueBytes), settings.FusionEntry),
                    "FusionCache (L2 only)", settings.FusionSettings, () => $"the distributed-cache circuit breaker opened {Volatile.Read(ref opened)} time(s).");
            default:
                throw new ArgumentException($"unknown provider '{provider}' ({ProviderSettings.All})");
        }
    }
}
