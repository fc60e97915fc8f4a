using System.Globalization;
using System.Text;
using Resilient.Caching.Benchmarks.Shared;
using Resilient.Caching.IntegrationTests.Infrastructure;
using Resilient.Caching.OutageReport;

const string Usage = "usage: Resilient.Caching.OutageReport <output-dir> [--topology single|cluster] [--callers 32] [--phase-seconds 10] [--think-ms 5] [--timeout-ms 1000] [--window-seconds 5] [--stock-defaults] [--providers " + ProviderSettings.All + "]";
if (args.Length == 0 || args[0].StartsWith('-'))
{
    Console.Error.WriteLine(Usage);
    return 2;
}

var output = Path.GetFullPath(args[0]);
var topology = StringOption("--topology") ?? "single";
var callers = IntOption("--callers", 32);
var phaseSeconds = IntOption("--phase-seconds", 10);
var thinkMs = IntOption("--think-ms", 5);
var timeoutMs = IntOption("--timeout-ms", 1000);
var windowSeconds = IntOption("--window-seconds", 5);
var stockDefaults = args.Contains("--stock-defaults");
var providers = (StringOption("--providers") ?? ProviderSettings.All).Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
if (callers is < 3 or > 1024 || phaseSeconds is < 3 or > 60 || thinkMs is < 0 or > 1000 || timeoutMs is < 100 or > 30_000 || windowSeconds is < 1 or > 300
    || topology is not ("single" or "cluster") || providers.Length == 0 || providers.Any(p => !ProviderSettings.All.Split(',').Contains(p)))
{
    Console.Error.WriteLine("an option is out of range (topology single or cluster, callers 3–1024, phase-seconds 3–60, think-ms 0–1000, timeout-ms 100–30000, window-seconds 1–300, providers among " + ProviderSettings.All + ")");
    Console.Error.WriteLine(Usage);
    return 2;
}

Directory.CreateDirectory(output);
var cluster = topology == "cluster";
var command = "dotnet run -c Release --project benchmarks/Resilient.Caching.OutageReport -- " + string.Join(' ', args);
var header = MachineInfo.Summary(command) + "\n- Peers: " + PeerVersions();
var timeline = cluster ? Timeline.Cluster(phaseSeconds) : Timeline.Single(phaseSeconds);
var workload = new WorkloadSettings(callers, TimeSpan.FromMilliseconds(thinkMs), 1024);
var settings = new ProviderSettings(timeoutMs, windowSeconds, stockDefaults, workload.ValueBytes);

Console.WriteLine($"Outage report ({topology}): {callers} callers, {timeline.TotalSeconds:0} s per provider, providers: {string.Join(", ", providers)}");
var results = new List<ProviderResult>();
foreach (var provider in providers)
{
    results.Add(cluster
        ? await ClusterRun.RunAsync(provider, settings, timeline, workload, Console.WriteLine)
        : await RunSingleAsync(provider));
}

var fileName = cluster ? "outage-report-cluster" : "outage-report";
var subtitle = string.Create(CultureInfo.InvariantCulture,
    $"{callers} callers (read, {thinkMs} ms think, write; 1 KB), {Environment.ProcessorCount} cores; stock timeouts {(stockDefaults ? "5 s (defaults)" : $"{timeoutMs} ms")}; ours: timeout {timeoutMs} ms, window {windowSeconds} s; FusionCache breaker {windowSeconds} s");
var pngPath = Path.Combine(output, fileName + ".png");
if (cluster)
{
    Chart.Save(pngPath, results, timeline, "Cluster outage report: one of 3 primaries killed, replica promoted, node restarted\n" + subtitle,
        [Chart.Calls, Chart.HitRatio("hit ratio, keys on the failed shard", 1), Chart.HitRatio("hit ratio, keys on healthy shards", 0), Chart.P99]);
}
else
{
    Chart.Save(pngPath, results, timeline, "Outage report: cache calls completed per second, hit ratio and p99 latency\n" + subtitle,
        [Chart.Calls, Chart.HitRatio("hit ratio of reads", null), Chart.P99]);
}

var markdown = new StringBuilder();
markdown.AppendLine(cluster
    ? "# Cluster outage report: stock RedisCache, swallow-only, Resilient.Caching, HybridCache, FusionCache"
    : "# Outage report: stock RedisCache, swallow-only, Resilient.Caching, HybridCache, FusionCache");
markdown.AppendLine();
markdown.AppendLine(header);
markdown.AppendLine();
markdown.AppendLine("## Set-up");
markdown.AppendLine();
markdown.AppendLine(CultureInfo.InvariantCulture, $"- Workload: {callers} concurrent virtual users, each looping over session-like requests on its own key: a read of the session, {thinkMs} ms of page work (`Task.Delay`), a write of the 1 KB session (skipped when the read threw). Closed loop, no caller token. A *call* is one read or one write; latency is per call; a call counts in the second it completes. *Hit ratio* = reads that returned the stored session / reads completed (a read that threw counts as not hit).");
markdown.AppendLine("- What a read and a write are, per provider (the API an application uses):");
markdown.AppendLine("  - stock, swallow-only, Resilient.Caching (`IDistributedCache`): read = `GetAsync(key)` (hit = non-null); write = `SetAsync(key, value, SlidingExpiration 20 min)`.");
markdown.AppendLine("  - HybridCache: read = `GetOrCreateAsync<byte[]>(key, factory)` whose factory returns a new 1 KB session (miss = the factory ran; HybridCache then stores its result, so a miss includes that write); write = `SetAsync(key, value)`. Entry options: `Expiration` 20 min (HybridCache has no sliding expiration), `Flags = DisableLocalCache`.");
markdown.AppendLine(CultureInfo.InvariantCulture, $"  - FusionCache: read = `GetOrSetAsync<byte[]>(key, factory)` (the same factory; miss = the factory ran); write = `SetAsync(key, value)`. Entry options: `Duration` 20 min (no sliding expiration either), `SkipMemoryCacheRead`/`SkipMemoryCacheWrite`, `DistributedCacheSoftTimeout` {timeoutMs / 2} ms, `DistributedCacheHardTimeout` {timeoutMs} ms, `AllowBackgroundDistributedCacheOperations = true`; `DistributedCacheCircuitBreakerDuration` {windowSeconds} s; System.Text.Json serializer (FusionCache stores its own envelope, the 1 KB as base64).");
markdown.AppendLine("- Fairness: HybridCache and FusionCache are two-level caches; with their memory level (L1) on, a session read after a write in the same process never reaches Redis and the outage would be invisible to reads: that measures the process's memory, not the distributed tier, and for sessions it is also wrong in a farm (the next request of a user may land on another instance, and a local copy is stale as soon as another instance writes it). So L1 is off for both (HybridCache `DisableLocalCache` = no local read or write; FusionCache `SkipMemoryCacheRead`/`SkipMemoryCacheWrite`), and FusionCache's fail-safe is off (it serves a stale copy when the *factory* fails; the factory here never fails, and without L1 there is no copy to serve while Redis is down). The distributed-cache resilience each offers stays on: HybridCache's own handling of L2 errors (it offers no setting for it), FusionCache's circuit breaker, timeouts and background distributed operations as its documentation sets them up for a distributed cache that may fail. Every provider reaches Redis through the same stock `RedisCache` and StackExchange.Redis with the same timeouts, except ours, which builds its own (same timeouts).");
markdown.AppendLine(CultureInfo.InvariantCulture, $"- FusionCache's background distributed operations mean its `SetAsync` returns before Redis has the value (its write latency is not Redis's), and its circuit-breaker length is set to ours' unavailable window ({windowSeconds} s) so that both back off for as long. FusionCache's hard timeout ({timeoutMs} ms) equals the client's; its soft timeout, by its documentation, applies only with fail-safe on and a stale value to fall back to, neither of which exists here.");
if (cluster)
{
    markdown.AppendLine("- Path: client → a throw-away Redis Cluster of 3 primaries + 3 replicas (`RedisCluster` fixture: 6 `redis-server` processes on loopback, `cluster-node-timeout` 1000 ms, `cluster-require-full-coverage no`); no proxy (the kill is real). A fresh cluster and provider for each provider, connected to every shard before t = 0. Keys are `session:{N}`, spread round-robin over the three shards (the hash tag fixes the slot whatever prefix a provider adds, e.g. FusionCache's wire-format version); \"failed shard\" = the keys of the killed primary.");
    var phases = string.Join("; ", timeline.Phases.Select(p => string.Create(CultureInfo.InvariantCulture, $"{p.StartSeconds:0} s {p.Name}")));
    markdown.AppendLine(CultureInfo.InvariantCulture, $"- Timeline (the same for every provider, {timeline.TotalSeconds:0} s): {phases}. Primary killed = SIGKILL of the first primary; its replica is promoted by the cluster itself (the time it was seen is per provider run, from the replica's `ROLE`, and marked in the tables and chart); killed node restarted = the same process arguments and cluster-config-file, empty data, and it rejoins as the replica of the promoted node (seen when every node agrees and its replication link is up).");
    markdown.AppendLine("- \"While the shard had no primary\" = from the kill to the promotion seen, per provider run. Recovery: seconds from the promotion to the end of the first whole second in which the failed shard's reads hit at ≥ 90% of their healthy hit ratio.");
}
else
{
    markdown.AppendLine("- Path: client → in-process TCP fault proxy (`FaultProxy`) → a throw-away `redis-server` (`RedisServer` fixture), both on loopback; a fresh server, proxy and provider for each provider, connected before t = 0.");
    var phases = string.Join("; ", timeline.Phases.Select(p => string.Create(CultureInfo.InvariantCulture, $"{p.StartSeconds:0} s {p.Name}")));
    markdown.AppendLine(CultureInfo.InvariantCulture, $"- Timeline (the same for every provider, {timeline.TotalSeconds:0} s): {phases}. Killed = SIGKILL (connections closed, port refuses); restarted = same port, empty; blackholed = the proxy silently drops everything on open connections and accepts but never forwards new ones; healed = pass-through again (frozen connections stay dead, as after a firewall drop).");
    markdown.AppendLine("- Recovery: seconds from the event to the end of the first whole second with ≥ 90% of the provider's healthy throughput; \"reads hit again\" uses the hit ratio of reads instead (Redis really in use again, not just calls answered).");
}

markdown.AppendLine(CultureInfo.InvariantCulture, $"- Stock `RedisCache`: `Configuration = \"ENDPOINTS{(stockDefaults ? string.Empty : "," + settings.StockTimeouts)}\"` ({settings.StockTimeouts}).");
markdown.AppendLine("- Swallow-only: the same stock cache behind a decorator that turns Redis errors (RedisException, TimeoutException, SocketException, IOException, ObjectDisposedException) into a miss / skipped write, with no back-off (django-redis `IGNORE_EXCEPTIONS`).");
markdown.AppendLine(CultureInfo.InvariantCulture, $"- Resilient.Caching: `AddResilientStackExchangeRedisCache` with {settings.OurSettings}; the library as built from the same commit as this program.");
markdown.AppendLine(CultureInfo.InvariantCulture, $"- HybridCache: {settings.HybridSettings}.");
markdown.AppendLine(CultureInfo.InvariantCulture, $"- FusionCache: {settings.FusionSettings}.");
markdown.AppendLine("- No logging provider is registered for any of them (no log output costs anyone CPU).");
markdown.AppendLine();
markdown.AppendLine("## Summary");
markdown.AppendLine();
markdown.AppendLine(cluster ? MarkdownReport.ClusterSummary(results, timeline) : MarkdownReport.Summary(results, timeline));
if (cluster)
{
    markdown.AppendLine("A hit ratio of – means no read on those keys completed in that interval (every caller on them was blocked).");
    markdown.AppendLine();
}

foreach (var r in results.Where(r => r.Notes is not null || r.Abandoned > 0))
{
    var abandoned = r.Abandoned > 0 ? $" {r.Abandoned} caller(s) were still blocked 20 s after the end and were abandoned." : string.Empty;
    markdown.AppendLine(CultureInfo.InvariantCulture, $"- {r.Name}: {r.Notes}{abandoned}");
}

markdown.AppendLine();
markdown.AppendLine("Ratios vs the stock `RedisCache` measured in the same run (value in brackets):");
markdown.AppendLine();
markdown.AppendLine(MarkdownReport.VsStock(results, cluster ? ClusterRatios() : SingleRatios()));
markdown.AppendLine(CultureInfo.InvariantCulture, $"![calls, hit ratio and p99 latency per second]({fileName}.png)");
markdown.AppendLine();
markdown.AppendLine("## Per second");
markdown.AppendLine();
markdown.AppendLine(cluster
    ? "Calls completed in the second (a mark when the run saw the promotion or the rejoin in it), errors thrown to callers, hit ratio of the reads on keys of the healthy shards and of the failed shard, p99 latency."
    : "Calls completed in the second, errors thrown to callers, hit ratio of the reads, latency of those calls (p50 / p99 / max).");
markdown.AppendLine();
markdown.AppendLine(cluster ? MarkdownReport.ClusterPerSecond(results, timeline) : MarkdownReport.PerSecond(results, timeline));
var markdownPath = Path.Combine(output, fileName + ".md");
await File.WriteAllTextAsync(markdownPath, markdown.ToString());

Console.WriteLine();
Console.WriteLine(cluster ? MarkdownReport.ClusterSummary(results, timeline) : MarkdownReport.Summary(results, timeline));
Console.WriteLine(MarkdownReport.VsStock(results, cluster ? ClusterRatios() : SingleRatios()));
foreach (var r in results.Where(r => r.Notes is not null))
{
    Console.WriteLine($"{r.Name}: {r.Notes}");
}

Console.WriteLine($"Wrote {markdownPath} and {pngPath}");
return 0;

async Task<ProviderResult> RunSingleAsync(string provider)
{
    await using var redis = await RedisServer.StartNewAsync();
    await using var proxy = new FaultProxy(redis.Host, redis.Port);
    var instance = Providers.Create(provider, proxy.ConnectionString, settings);
    using (instance.Cache)
    {
        Console.WriteLine($"  {instance.Name} ({instance.Settings}) on redis :{redis.Port} via proxy :{proxy.Port}");

        // Connected and warm before t = 0, as a running application would be.
        await Warm.UpAsync(instance, "warmup", workload.ValueBytes);

        var keys = Enumerable.Range(0, callers).Select(i => new CallerKey($"session:{i}", 0)).ToList();
        var (samples, abandoned, marks) = await LoadRun.RunAsync(
            instance.Cache, keys, timeline, workload, clock => LoadRun.InjectSingleAsync(redis, proxy, timeline, clock, Console.WriteLine), Console.WriteLine);
        return new ProviderResult(provider, instance.Name, instance.Settings, samples, abandoned, timeline, marks, instance.Notes());
    }
}

IReadOnlyList<(string, Func<ProviderResult, double>)> SingleRatios() =>
[
    ("healthy calls/s", r => r.HealthyThroughput),
    ("calls/s Redis killed", r => r.Throughput(PhaseKind.Killed)),
    ("calls/s blackholed", r => r.Throughput(PhaseKind.Blackholed)),
    ("calls/s after restart", r => r.Throughput(PhaseKind.Restarted)),
    ("calls/s after heal", r => r.Throughput(PhaseKind.Healed)),
    ("errors seen by callers", r => r.TotalErrors),
];

IReadOnlyList<(string, Func<ProviderResult, double>)> ClusterRatios()
{
    var killed = timeline.Start(PhaseKind.PrimaryKilled);
    var restarted = timeline.Start(PhaseKind.NodeRestarted);
    double Promoted(ProviderResult r) => r.MarkAt(ClusterRun.Promoted) ?? restarted;
    return
    [
        ("healthy calls/s", r => r.HealthyThroughput),
        ("calls/s while the shard had no primary", r => r.CallsPerSecond(killed, Promoted(r))),
        ("hits/s while the shard had no primary", r => r.Samples.Count(s => s.Outcome == CallOutcome.Hit && s.CompletedAt >= killed && s.CompletedAt < Promoted(r)) / (Promoted(r) - killed)),
        ("calls/s promotion → restart", r => r.CallsPerSecond(Promoted(r), restarted)),
        ("calls/s after the restart", r => r.CallsPerSecond(restarted, timeline.TotalSeconds)),
        ("errors seen by callers", r => r.TotalErrors),
    ];
}

static string PeerVersions() => string.Join(", ",
    Version("Microsoft.Extensions.Caching.Hybrid", typeof(Microsoft.Extensions.Caching.Hybrid.HybridCache)),
    Version("ZiggyCreatures.FusionCache", typeof(ZiggyCreatures.Caching.Fusion.FusionCache)));

static string Version(string name, Type type)
{
    var informational = type.Assembly.GetCustomAttributes(typeof(System.Reflection.AssemblyInformationalVersionAttribute), false)
        .OfType<System.Reflection.AssemblyInformationalVersionAttribute>().FirstOrDefault()?.InformationalVersion;
    return $"{name} {informational?.Split('+')[0] ?? type.Assembly.GetName().Version?.ToString() ?? "?"}";
}

int IntOption(string name, int fallback) =>
    StringOption(name) is { } text ? int.Parse(text, CultureInfo.InvariantCulture) : fallback;

string? StringOption(string name)
{
    var index = Array.IndexOf(args, name);
    return index >= 0 && index + 1 < args.Length ? args[index + 1] : null;
}
