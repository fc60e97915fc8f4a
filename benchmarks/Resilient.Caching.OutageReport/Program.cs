using System.Globalization;
using System.Text;
using Microsoft.Extensions.Caching.Distributed;
using Resilient.Caching.Benchmarks.Shared;
using Resilient.Caching.IntegrationTests.Infrastructure;
using Resilient.Caching.OutageReport;

// Usage: Resilient.Caching.OutageReport <output-dir> [--callers 32] [--phase-seconds 10] [--think-ms 5]
//        [--timeout-ms 1000] [--window-seconds 5] [--stock-defaults] [--providers stock,swallow,ours]
if (args.Length == 0 || args[0].StartsWith('-'))
{
    Console.Error.WriteLine("usage: Resilient.Caching.OutageReport <output-dir> [--callers 32] [--phase-seconds 10] [--think-ms 5] [--timeout-ms 1000] [--window-seconds 5] [--stock-defaults] [--providers stock,swallow,ours]");
    return 2;
}

var output = Path.GetFullPath(args[0]);
var callers = IntOption("--callers", 32);
var phaseSeconds = IntOption("--phase-seconds", 10);
var thinkMs = IntOption("--think-ms", 5);
var timeoutMs = IntOption("--timeout-ms", 1000);
var windowSeconds = IntOption("--window-seconds", 5);
var stockDefaults = args.Contains("--stock-defaults");
var providers = (StringOption("--providers") ?? "stock,swallow,ours").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
if (callers is < 1 or > 1024 || phaseSeconds is < 3 or > 60 || thinkMs is < 0 or > 1000 || timeoutMs is < 100 or > 30_000 || windowSeconds is < 1 or > 300)
{
    Console.Error.WriteLine("an option is out of range (callers 1–1024, phase-seconds 3–60, think-ms 0–1000, timeout-ms 100–30000, window-seconds 1–300)");
    return 2;
}

Directory.CreateDirectory(output);
var command = "dotnet run -c Release --project benchmarks/Resilient.Caching.OutageReport -- " + string.Join(' ', args);
var header = MachineInfo.Summary(command);
var timeline = new Timeline(phaseSeconds);
var workload = new WorkloadSettings(callers, TimeSpan.FromMilliseconds(thinkMs), 1024);
var stockTimeouts = stockDefaults
    ? "StackExchange.Redis defaults (connect/sync/async timeout 5 s)"
    : string.Create(CultureInfo.InvariantCulture, $"connectTimeout={timeoutMs},syncTimeout={timeoutMs},asyncTimeout={timeoutMs}");
var ourSettings = string.Create(CultureInfo.InvariantCulture,
    $"OperationTimeout {timeoutMs / 1000.0:0.###} s, ConnectTimeout {timeoutMs / 1000.0:0.###} s, UnavailableWindow {windowSeconds} s, other settings default");

Console.WriteLine($"Outage report: {callers} callers, {timeline.TotalSeconds:0} s per provider, providers: {string.Join(", ", providers)}");
var results = new List<ProviderResult>();
foreach (var provider in providers)
{
    results.Add(await RunProviderAsync(provider));
}

var subtitle = string.Create(CultureInfo.InvariantCulture,
    $"{callers} callers (GetAsync, {thinkMs} ms think, SetAsync; 1 KB), {Environment.ProcessorCount} cores; stock timeouts {(stockDefaults ? "5 s (defaults)" : $"{timeoutMs} ms")}; ours: timeout {timeoutMs} ms, window {windowSeconds} s");
var pngPath = Path.Combine(output, "outage-report.png");
Chart.Save(pngPath, results, timeline, subtitle);

var markdown = new StringBuilder();
markdown.AppendLine("# Outage report: stock RedisCache vs swallow-only vs Resilient.Caching");
markdown.AppendLine();
markdown.AppendLine(header);
markdown.AppendLine();
markdown.AppendLine("## Set-up");
markdown.AppendLine();
markdown.AppendLine(CultureInfo.InvariantCulture, $"- Workload: {callers} concurrent virtual users, each looping over session-like requests: `GetAsync(\"session:N\")`, {thinkMs} ms of page work (`Task.Delay`), `SetAsync` of the 1 KB session with a 20-minute sliding expiration (skipped when the read threw). Closed loop, no caller token. A *call* is one GetAsync or SetAsync; latency is per call; a call counts in the second it completes.");
markdown.AppendLine("- Path: client → in-process TCP fault proxy (`FaultProxy`) → a throw-away `redis-server` (`RedisServer` fixture), both on loopback; a fresh server, proxy and provider for each provider, connected before t = 0.");
var phases = string.Join("; ", timeline.Phases.Select(p => string.Create(CultureInfo.InvariantCulture, $"{p.StartSeconds:0} s {p.Name}")));
markdown.AppendLine(CultureInfo.InvariantCulture, $"- Timeline (the same for every provider, {timeline.TotalSeconds:0} s): {phases}. Killed = SIGKILL (connections closed, port refuses); restarted = same port, empty; blackholed = the proxy silently drops everything on open connections and accepts but never forwards new ones; healed = pass-through again (frozen connections stay dead, as after a firewall drop).");
markdown.AppendLine(CultureInfo.InvariantCulture, $"- Stock `RedisCache`: `Configuration = \"127.0.0.1:PROXY{(stockDefaults ? string.Empty : "," + stockTimeouts)}\"` ({stockTimeouts}).");
markdown.AppendLine("- Swallow-only: the same stock cache behind a decorator that turns Redis errors (RedisException, TimeoutException, SocketException, IOException, ObjectDisposedException) into a miss / skipped write, with no back-off (django-redis `IGNORE_EXCEPTIONS`).");
markdown.AppendLine(CultureInfo.InvariantCulture, $"- Resilient.Caching: `AddResilientStackExchangeRedisCache` with {ourSettings}.");
markdown.AppendLine("- Recovery: seconds from the event to the end of the first whole second with ≥ 90% of the provider's healthy throughput; \"reads hit again\" uses the hit ratio of reads instead (Redis really in use again, not just calls answered).");
markdown.AppendLine();
markdown.AppendLine("## Summary");
markdown.AppendLine();
markdown.AppendLine(MarkdownReport.Summary(results, timeline));
foreach (var r in results.Where(r => r.Notes is not null || r.Abandoned > 0))
{
    var abandoned = r.Abandoned > 0 ? $" {r.Abandoned} caller(s) were still blocked 20 s after the end and were abandoned." : string.Empty;
    markdown.AppendLine(CultureInfo.InvariantCulture, $"- {r.Name}: {r.Notes}{abandoned}");
}

markdown.AppendLine();
markdown.AppendLine("![throughput and p99 latency per second](outage-report.png)");
markdown.AppendLine();
markdown.AppendLine("## Per second");
markdown.AppendLine();
markdown.AppendLine("Calls completed in the second, errors thrown to callers, latency of those calls (p50 / p99 / max).");
markdown.AppendLine();
markdown.AppendLine(MarkdownReport.PerSecond(results, timeline));
var markdownPath = Path.Combine(output, "outage-report.md");
await File.WriteAllTextAsync(markdownPath, markdown.ToString());

Console.WriteLine();
Console.WriteLine(MarkdownReport.Summary(results, timeline));
foreach (var r in results)
{
    Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
        $"{r.Name}: healthy {r.HealthyThroughput:0} calls/s; Redis killed {r.Throughput(PhaseKind.Killed):0} calls/s; blackholed {r.Throughput(PhaseKind.Blackholed):0} calls/s; errors {r.TotalErrors}; recovery after heal (throughput ≥ 90%) {MarkdownReport.Recovery(r.ThroughputRecovery(PhaseKind.Healed), timeline)}, reads hit again {MarkdownReport.Recovery(r.CacheRecovery(PhaseKind.Healed), timeline)}"));
}

Console.WriteLine($"Wrote {markdownPath} and {pngPath}");
return 0;

async Task<ProviderResult> RunProviderAsync(string provider)
{
    await using var redis = await RedisServer.StartNewAsync();
    await using var proxy = new FaultProxy(redis.Host, redis.Port);
    var stockConfiguration = stockDefaults ? proxy.ConnectionString : $"{proxy.ConnectionString},{stockTimeouts}";
    IDistributedCache cache;
    IDisposable owner;
    Func<string?> notes = () => null;
    string name;
    string settings;
    switch (provider)
    {
        case "stock":
            var stock = CacheProviders.CreateStock(stockConfiguration);
            (cache, owner, name, settings) = (stock, stock, "Stock RedisCache", stockTimeouts);
            break;
        case "swallow":
            var swallowing = new SwallowingDistributedCache(CacheProviders.CreateStock(stockConfiguration));
            (cache, owner, name, settings) = (swallowing, swallowing, "Swallow-only wrapper", stockTimeouts);
            break;
        case "ours":
            var ours = CacheProviders.CreateResilient(proxy.ConnectionString, o =>
            {
                o.OperationTimeout = TimeSpan.FromMilliseconds(timeoutMs);
                o.ConnectTimeout = TimeSpan.FromMilliseconds(timeoutMs);
                o.UnavailableWindow = TimeSpan.FromSeconds(windowSeconds);
            });
            (cache, owner, name, settings) = (ours.Cache, ours, "Resilient.Caching", ourSettings);
            notes = () => $"the unavailable window opened {ours.Availability.Outages} time(s).";
            break;
        default:
            throw new ArgumentException($"unknown provider '{provider}' (stock, swallow, ours)");
    }

    using (owner)
    {
        Console.WriteLine($"  {name} ({settings}) on redis :{redis.Port} via proxy :{proxy.Port}");

        // Connected and warm before t = 0, as a running application would be.
        await cache.SetAsync("warmup", [1], new DistributedCacheEntryOptions { SlidingExpiration = TimeSpan.FromMinutes(1) });
        _ = await cache.GetAsync("warmup") ?? throw new InvalidOperationException($"{name}: Redis is not reachable through the proxy.");

        var (samples, abandoned) = await LoadRun.RunAsync(cache, redis, proxy, timeline, workload, Console.WriteLine);
        return new ProviderResult(name, settings, samples, abandoned, timeline, notes());
    }
}

int IntOption(string name, int fallback) =>
    StringOption(name) is { } text ? int.Parse(text, CultureInfo.InvariantCulture) : fallback;

string? StringOption(string name)
{
    var index = Array.IndexOf(args, name);
    return index >= 0 && index + 1 < args.Length ? args[index + 1] : null;
}
