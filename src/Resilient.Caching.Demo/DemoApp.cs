using System.Globalization;
using System.Net;
using Microsoft.AspNetCore.Diagnostics.HealthChecks;
using Microsoft.AspNetCore.OutputCaching;
using Microsoft.Extensions.Caching.Hybrid;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace Resilient.Caching.Demo;

/// <summary>
/// The consumers the demo puts on the resilient cache (session, output caching, HybridCache, the health check) and
/// its pages. Program.cs and the end-to-end tests share this wiring.
/// </summary>
internal static class DemoApp
{
    public const string OutputTag = "demo";
    public const string OutputPolicy = "demo";
    public const string HybridKey = "hybrid";

    // L1 off: each request shows what the distributed level (Redis) does, which is the point of the demo.
    private static readonly HybridCacheEntryOptions s_hybridOptions = new()
    {
        Expiration = TimeSpan.FromMinutes(10),
        Flags = HybridCacheEntryFlags.DisableLocalCache,
    };

    /// <summary>Adds session, output caching on Redis, HybridCache and the health check; the cache itself is added by the caller.</summary>
    public static IServiceCollection AddDemo(this IServiceCollection services)
    {
        services.AddSingleton<RenderCounter>();
        services.AddSession(options => options.Cookie.Name = "demo.session");
        services.AddOutputCache(options => options.AddPolicy(OutputPolicy, policy => policy.Tag(OutputTag).Expire(TimeSpan.FromMinutes(10))));
        services.AddResilientStackExchangeRedisOutputCache();
        services.AddHybridCache();
        services.AddHealthChecks().AddResilientStackExchangeRedisCache();
        return services;
    }

    /// <summary>Adds the middleware and the pages.</summary>
    public static WebApplication MapDemo(this WebApplication app)
    {
        app.UseSession();
        app.UseOutputCache();

        app.MapGet("/", StatePage.RenderAsync);
        app.MapGet("/state.json", async (HttpContext context, CancellationToken cancellationToken) => Results.Json(await DemoState.CaptureAsync(context, cancellationToken)));
        app.MapGet("/session", SessionAsync);
        app.MapGet("/output", Output).CacheOutput(OutputPolicy);
        app.MapGet("/output/evict", EvictAsync);
        app.MapGet("/hybrid", HybridAsync);
        app.MapHealthChecks("/health", new HealthCheckOptions { ResponseWriter = WriteHealthAsync });
        return app;
    }

    private static async Task<IResult> SessionAsync(HttpContext context, CancellationToken cancellationToken)
    {
        // LoadAsync is the call that answers 500 with the stock cache while Redis is down.
        await context.Session.LoadAsync(cancellationToken);
        var visits = (context.Session.GetInt32("visits") ?? 0) + 1;
        context.Session.SetInt32("visits", visits);
        return Page("Session", $"""
            <p>Visits in this session: <strong id="visits">{visits}</strong></p>
            <p>Kept in Redis through <code>AddSession</code>. While Redis is unavailable the session is empty (the count
            starts again at 1) instead of failing the request.</p>
            """);
    }

    private static IResult Output(RenderCounter counter)
    {
        var rendered = string.Create(CultureInfo.InvariantCulture, $"{DateTimeOffset.UtcNow:HH:mm:ss.fff} UTC (render #{counter.Next()})");
        return Page("Output cache", $"""
            <p>Rendered at <strong id="rendered">{rendered}</strong></p>
            <p>Output-cached in Redis for 10 minutes with the tag <code>{OutputTag}</code>: reload and the time stays the
            same until you <a href="/output/evict">evict the tag</a>. While Redis is unavailable every request renders afresh.</p>
            """);
    }

    private static async Task<IResult> EvictAsync(IOutputCacheStore store, CacheAvailability availability, CancellationToken cancellationToken)
    {
        await store.EvictByTagAsync(OutputTag, cancellationToken);
        var outcome = availability.IsAvailable
            ? $"Evicted the tag <code>{OutputTag}</code>."
            : $"Redis is unavailable: the eviction of <code>{OutputTag}</code> was skipped (and logged).";
        return Page("Output cache", $"""<p id="evicted">{outcome}</p><p><a href="/output">Back to the output-cached page</a></p>""");
    }

    private static async Task<IResult> HybridAsync(HybridCache cache, RenderCounter counter, CancellationToken cancellationToken)
    {
        var run = new FactoryRun(counter);
        var value = await cache.GetOrCreateAsync(HybridKey, run, static (run, _) => run.ComputeAsync(), s_hybridOptions, cancellationToken: cancellationToken);
        var source = run.Ran ? "the factory ran for this request" : "from Redis (the factory did not run)";
        return Page("HybridCache", $"""
            <p>Value: <strong id="value">{WebUtility.HtmlEncode(value)}</strong></p>
            <p>Source: <span id="source">{source}</span></p>
            <p><code>HybridCache.GetOrCreateAsync</code> with our cache as its distributed level (its local level is off
            here, so every request asks Redis). While Redis is unavailable the factory runs instead.</p>
            """);
    }

    private static Task WriteHealthAsync(HttpContext context, HealthReport report) =>
        context.Response.WriteAsJsonAsync(new
        {
            status = report.Status.ToString(),
            durationMs = Math.Round(report.TotalDuration.TotalMilliseconds, 1),
            checks = report.Entries.ToDictionary(
                entry => entry.Key,
                entry => new { status = entry.Value.Status.ToString(), description = entry.Value.Description, data = entry.Value.Data }),
        });

    internal static IResult Page(string title, string body) => Results.Content(StatePage.Layout(title, body, refresh: false), "text/html; charset=utf-8");

    /// <summary>Numbers renders and computations, so that every fresh one is told apart from a cached one.</summary>
    internal sealed class RenderCounter
    {
        private long _count;

        public long Next() => Interlocked.Increment(ref _count);
    }

    private sealed class FactoryRun(RenderCounter counter)
    {
        public bool Ran { get; private set; }

        public ValueTask<string> ComputeAsync()
        {
            Ran = true;
            return ValueTask.FromResult(string.Create(CultureInfo.InvariantCulture, $"computed at {DateTimeOffset.UtcNow:HH:mm:ss.fff} UTC (#{counter.Next()})"));
        }
    }
}
