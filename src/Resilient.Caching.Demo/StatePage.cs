using System.Globalization;
using System.Net;
using System.Text.RegularExpressions;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Options;
using StackExchange.Redis;

namespace Resilient.Caching.Demo;

/// <summary>What the state page and <c>/state.json</c> show.</summary>
internal sealed partial record DemoState(
    bool Available,
    string Redis,
    string Health,
    string? HealthDescription,
    double RetryAfterSeconds,
    double OutageSeconds,
    long Outages,
    long SkippedOperations,
    string? LastError,
    DateTimeOffset? LastErrorAt,
    double WindowSeconds,
    double OperationTimeoutSeconds,
    double ConnectTimeoutSeconds,
    string Server)
{
    /// <summary>
    /// Runs the health check first: its PING (through the window) is what tells an idle demo that Redis is gone, so
    /// the page is right even before any other page was asked for.
    /// </summary>
    public static async Task<DemoState> CaptureAsync(HttpContext context, CancellationToken cancellationToken)
    {
        var services = context.RequestServices;
        var report = await services.GetRequiredService<HealthCheckService>().CheckHealthAsync(cancellationToken);
        var availability = services.GetRequiredService<CacheAvailability>();
        var options = services.GetRequiredService<IOptions<ResilientRedisCacheOptions>>().Value;
        var entry = report.Entries.Values.FirstOrDefault();
        return new DemoState(
            availability.IsAvailable,
            DescribeRedis(options),
            report.Status.ToString(),
            entry.Description,
            Math.Round(availability.RetryAfter.TotalSeconds, 1),
            Math.Round(availability.OutageDuration.TotalSeconds, 1),
            availability.Outages,
            availability.SkippedOperations,
            availability.LastError is { } error ? Describe(error) : null,
            availability.LastErrorAt,
            availability.Window.TotalSeconds,
            options.OperationTimeout.TotalSeconds,
            options.ConnectTimeout.TotalSeconds,
            services.GetService<DemoServer>()?.Description ?? "the Redis configured in Redis:Configuration");
    }

    private static string DescribeRedis(ResilientRedisCacheOptions options)
    {
        if (options.ConnectionMultiplexerFactory is not null)
        {
            return "(the application's ConnectionMultiplexerFactory)";
        }

        try
        {
            // A redis:// URI is shown as written, its user-info masked; StackExchange.Redis's own format through its
            // ToString, which leaves the password out.
            var text = options.ConfigurationOptions?.ToString(includePassword: false)
                ?? (options.Configuration ?? string.Empty) switch
                {
                    var uri when uri.Contains("://", StringComparison.Ordinal) => uri,
                    var other => ConfigurationOptions.Parse(other).ToString(includePassword: false),
                };
            return Mask(text);
        }
        catch (ArgumentException)
        {
            return "(unreadable configuration)";
        }
    }

    private static string Describe(Exception error)
    {
        // StackExchange.Redis appends a long dump of its counters to the first line: the start says what happened.
        var message = Mask(error.Message.Split('\n', 2)[0].Trim());
        return $"{error.GetType().Name}: {(message.Length <= 160 ? message : message[..160] + "…")}";
    }

    private static string Mask(string text) => Credential().Replace(UserInfo().Replace(text, "$1***@"), "$1=***");

    [GeneratedRegex(@"\b(password|pwd|pass|user)\s*=\s*[^,;\s]*", RegexOptions.IgnoreCase | RegexOptions.CultureInvariant)]
    private static partial Regex Credential();

    [GeneratedRegex(@"\b([a-z][a-z0-9+.\-]*://)[^\s]*@", RegexOptions.IgnoreCase | RegexOptions.CultureInvariant)]
    private static partial Regex UserInfo();
}

/// <summary>The HTML of the state page (<c>/</c>) and the layout of every page.</summary>
internal static class StatePage
{
    public static async Task<IResult> RenderAsync(HttpContext context, CancellationToken cancellationToken)
    {
        var state = await DemoState.CaptureAsync(context, cancellationToken);
        var banner = state.Available
            ? $"""
              <div class="banner ok"><h2 id="status">Redis available</h2>
              <p>Every cache call goes to Redis at <code>{Encode(state.Redis)}</code>.</p></div>
              """
            : state.RetryAfterSeconds > 0
                ? $"""
                  <div class="banner down"><h2 id="status">Redis unavailable</h2>
                  <p>The cache skips Redis for another <strong id="retry-after">{Seconds(state.RetryAfterSeconds)}</strong>,
                  then one request probes it. Every page still answers: reads are misses, writes are skipped.</p></div>
                  """
                : """
                  <div class="banner down"><h2 id="status">Redis unavailable</h2>
                  <p>The window has elapsed: <strong id="retry-after">the next cache call probes Redis</strong>.</p></div>
                  """;

        var lastError = state.LastError is null
            ? "none"
            : $"{Encode(state.LastError)} <span class=\"muted\">at {state.LastErrorAt:HH:mm:ss} UTC</span>";
        var body = $"""
            {banner}
            <table>
              <tr><th>Redis</th><td>{Encode(state.Redis)}</td></tr>
              <tr><th>Server</th><td id="server">{Encode(state.Server)}</td></tr>
              <tr><th>Health check</th><td id="health">{state.Health}</td></tr>
              <tr><th>Outages since start</th><td id="outages">{state.Outages}</td></tr>
              <tr><th>Current outage</th><td>{(state.Available ? "none" : Seconds(state.OutageSeconds))}</td></tr>
              <tr><th>Operations that skipped Redis</th><td id="skipped">{state.SkippedOperations} <span class="muted">(current or last outage)</span></td></tr>
              <tr><th>Last error</th><td id="last-error">{lastError}</td></tr>
              <tr><th>Settings</th><td>unavailable window {Seconds(state.WindowSeconds)}, operation timeout {Seconds(state.OperationTimeoutSeconds)},
                connect timeout {Seconds(state.ConnectTimeoutSeconds)}</td></tr>
            </table>
            <p class="muted">Stop Redis (or cut the network to it): the pages linked above keep answering, and this page
            shows the window. It refreshes every 2 s.</p>
            """;
        return Results.Content(Layout("Resilient.Caching demo", body, refresh: true), "text/html; charset=utf-8");
    }

    public static string Layout(string title, string body, bool refresh) => $$"""
        <!DOCTYPE html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        {{(refresh ? "<meta http-equiv=\"refresh\" content=\"2\">" : string.Empty)}}
        <title>{{Encode(title)}}</title>
        <style>
          body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0; background: #f6f7f9; color: #1f2328; }
          main { max-width: 900px; margin: 24px auto; padding: 0 24px; }
          h1 { font-size: 24px; margin: 0 0 16px; }
          nav a { display: inline-block; margin: 0 8px 8px 0; padding: 6px 12px; border-radius: 6px; background: #fff;
                  border: 1px solid #d0d7de; color: #0969da; text-decoration: none; font-size: 14px; }
          .banner { border-radius: 8px; padding: 12px 20px; margin: 16px 0; border: 2px solid; }
          .banner h2 { margin: 4px 0; font-size: 22px; }
          .banner p { margin: 6px 0; }
          .ok { background: #e9f7ef; border-color: #2da44e; }
          .down { background: #fff4e5; border-color: #d4a72c; }
          table { border-collapse: collapse; width: 100%; background: #fff; border: 1px solid #d0d7de; border-radius: 8px; }
          th, td { text-align: left; padding: 8px 12px; border-bottom: 1px solid #eaeef2; vertical-align: top; font-size: 15px; }
          th { width: 240px; color: #57606a; font-weight: 600; }
          code { background: #eaeef2; padding: 1px 4px; border-radius: 4px; }
          .muted { color: #6e7781; font-size: 13px; }
        </style>
        </head>
        <body><main>
        <h1>{{Encode(title)}}</h1>
        <nav><a href="/">State</a><a href="/session">Session</a><a href="/output">Output cache</a><a href="/output/evict">Evict output tag</a><a href="/hybrid">HybridCache</a><a href="/health">Health (JSON)</a><a href="/state.json">State (JSON)</a></nav>
        {{body}}
        </main></body>
        </html>
        """;

    private static string Seconds(double seconds) => string.Create(CultureInfo.InvariantCulture, $"{seconds:0.#} s");

    private static string Encode(string text) => WebUtility.HtmlEncode(text);
}
