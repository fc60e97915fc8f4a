using System.Diagnostics;
using System.Globalization;
using Microsoft.Extensions.Caching.Distributed;
using Resilient.Caching.IntegrationTests.Infrastructure;
using Xunit;

namespace Resilient.Caching.IntegrationTests.FaultLab;

/// <summary>
/// The stock provider (<c>RedisCache</c> with its defaults) in the lab's scenarios, for comparison. Nothing about it
/// is asserted (it is not ours to fix); the figures go to the test output. Scenario 3's baseline (sync callers under
/// a blackhole) always runs; the others are measurements run by hand:
/// <c>FAULTLAB_BASELINE=1 dotnet test --project test/Resilient.Caching.IntegrationTests --filter-class "*StockBaseline*"</c>.
/// </summary>
public sealed class StockBaselineTests
{
    private static readonly TimeSpan FaultFor = TimeSpan.FromSeconds(4);
    private static readonly TimeSpan Observe = TimeSpan.FromSeconds(30);

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Proxy_blackhole(bool async)
    {
        if (async)
        {
            Lab.SkipUnlessMeasuring(); // The sync variant is scenario 3's baseline and always runs.
        }

        await using var server = await RedisServer.StartNewAsync(cancellationToken: Lab.Ct);
        await using var proxy = new FaultProxy(server.Host, server.Port);
        using var stock = Lab.CreateStock(proxy.ConnectionString);

        var report = await Baseline.MeasureAsync(stock, async, ProxyFault(proxy, "proxy-blackhole", FaultMode.Blackhole), FaultFor, TimeSpan.FromSeconds(async ? 30 : 20));

        Assert.True(report.Calls > 0);
    }

    [Theory]
    [InlineData("kill", false)]
    [InlineData("kill", true)]
    [InlineData("reset-all", false)]
    [InlineData("reset-all", true)]
    [InlineData("reset-mode", false)]
    [InlineData("reset-mode", true)]
    [InlineData("sigstop", false)]
    [InlineData("sigstop", true)]
    [InlineData("client-pause", false)]
    [InlineData("client-pause", true)]
    [InlineData("oom", false)]
    [InlineData("busy", false)]
    [InlineData("readonly", false)]
    [InlineData("loading", false)]
    public async Task Fault_while_traffic_flows(string fault, bool async)
    {
        Lab.SkipUnlessMeasuring();
        await using var server = await RedisServer.StartNewAsync(new RedisServerOptions { MaxMemoryPolicy = "noeviction" }, Lab.Ct);
        await using var primary = await RedisServer.StartNewAsync(cancellationToken: Lab.Ct);
        await using var proxy = new FaultProxy(server.Host, server.Port);
        using var stock = Lab.CreateStock(proxy.ConnectionString);
        using var blocker = await RespConnection.ConnectAsync(server.Host, server.Port, TimeSpan.FromSeconds(5), Lab.Ct);
        var faultFor = FaultFor;
        var writesOnly = fault is "oom" or "readonly";
        Fault injected;
        switch (fault)
        {
            case "kill":
                injected = new Fault(fault, () => { server.Kill(); return Task.CompletedTask; }, () => server.RestartAsync(Lab.Ct));
                break;
            case "reset-all":
                proxy.SetMode(FaultMode.Latency(TimeSpan.FromMilliseconds(40)));
                faultFor = TimeSpan.FromMilliseconds(300);
                injected = new Fault(fault, async () =>
                {
                    for (var i = 0; i < 3; i++)
                    {
                        await Task.Delay(60, Lab.Ct);
                        proxy.ResetAllConnections();
                    }
                }, () => Task.CompletedTask);
                break;
            case "reset-mode":
                injected = ProxyFault(proxy, fault, FaultMode.Reset);
                break;
            case "sigstop":
                injected = new Fault(fault, () => { server.Pause(); return Task.CompletedTask; }, () => { server.Resume(); return Task.CompletedTask; });
                break;
            case "client-pause":
                faultFor = TimeSpan.Zero;
                injected = new Fault(fault, () => server.ExecuteAsync("CLIENT", "PAUSE", "4000", "ALL"), () => Task.Delay(FaultFor, Lab.Ct));
                break;
            case "oom":
                injected = new Fault(fault,
                    async () =>
                    {
                        await server.ExecuteAsync("DEBUG", "POPULATE", "20000", "lab-filler", "64");
                        await server.ExecuteAsync("CONFIG", "SET", "maxmemory", "1mb");
                    },
                    () => server.ExecuteAsync("CONFIG", "SET", "maxmemory", "0"));
                break;
            case "busy":
                await server.ExecuteAsync("CONFIG", "SET", "busy-reply-threshold", "100");
                injected = new Fault(fault, () => blocker.SendAsync(["EVAL", "while true do end", "0"], Lab.Ct), async () =>
                {
                    await server.ExecuteAsync("SCRIPT", "KILL");
                    await blocker.ReadReplyAsync(TimeSpan.FromSeconds(5), Lab.Ct);
                });
                break;
            case "readonly":
                injected = new Fault(fault,
                    () => server.ExecuteAsync("REPLICAOF", primary.Host, primary.Port.ToString(CultureInfo.InvariantCulture)),
                    () => server.ExecuteAsync("REPLICAOF", "NO", "ONE"));
                break;
            default:
                await server.ExecuteAsync("DEBUG", "POPULATE", "3000", "lab-filler", "100");
                await server.ExecuteAsync("CONFIG", "SET", "key-load-delay", "1000");
                await server.ExecuteAsync("CONFIG", "SET", "loading-process-events-interval-bytes", "1024");
                faultFor = TimeSpan.Zero;
                injected = new Fault(fault, () => blocker.SendAsync(["DEBUG", "RELOAD"], Lab.Ct), () => blocker.ReadReplyAsync(TimeSpan.FromSeconds(30), Lab.Ct));
                break;
        }

        try
        {
            await Baseline.MeasureAsync(stock, async, injected, faultFor, Observe, writesOnly);
        }
        finally
        {
            if (fault == "sigstop" && server.ProcessId is not null)
            {
                server.Resume();
            }
        }
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Firewall_drop_while_traffic_flows(bool async)
    {
        Lab.SkipUnlessMeasuring();
        NetworkNamespaceRedis.SkipIfUnavailable();

        await using var redis = await NetworkNamespaceRedis.StartAsync(cancellationToken: Lab.Ct);
        using var stock = Lab.CreateStock(redis.ConnectionString);
        await Baseline.MeasureAsync(stock, async, new Fault("netns-drop", redis.DropTrafficAsync, redis.RestoreTrafficAsync), FaultFor, Observe);
    }

    [Fact]
    public async Task Idle_connection_dropped_by_a_firewall()
    {
        Lab.SkipUnlessMeasuring();
        NetworkNamespaceRedis.SkipIfUnavailable();

        await using var redis = await NetworkNamespaceRedis.StartAsync(cancellationToken: Lab.Ct);
        using var stock = Lab.CreateStock(redis.ConnectionString);
        stock.Set("k", Lab.Bytes("v"), new DistributedCacheEntryOptions());
        await redis.DropTrafficAsync();
        await Task.Delay(TimeSpan.FromSeconds(12), Lab.Ct); // As long as our keepalive test allows itself.
        var established = KernelSockets.EstablishedTo(redis.Host, redis.Port);
        var first = Time(() => stock.Get("k"));
        await redis.RestoreTrafficAsync();
        var healed = Stopwatch.StartNew();
        string? after = null;
        while (healed.Elapsed < Observe && after is null)
        {
            after = Time(() => stock.Get("k")) is var r && r.Error is null ? r.ToString() : null;
        }

        Lab.Report($"STOCK idle drop: after 12 s idle {established} socket(s) still established; first request {first}; after restore: {(after is null ? "no success" : $"success after {healed.Elapsed.TotalMilliseconds:0} ms")}");
    }

    [Theory]
    [InlineData(null)]
    [InlineData("wrong")]
    public async Task Credentials_rejected(string? password)
    {
        Lab.SkipUnlessMeasuring();
        await using var server = await RedisServer.StartNewAsync(new RedisServerOptions { RequirePass = "right" }, Lab.Ct);
        using var stock = Lab.CreateStock($"{server.Host}:{server.Port}{(password is null ? string.Empty : ",password=" + password)}");
        Lab.Report($"STOCK credentials {password ?? "(none)"}: first {Time(() => stock.Get("k"))}; second {Time(() => stock.Get("k"))}");
    }

    [Fact]
    public async Task Configured_against_a_replica()
    {
        Lab.SkipUnlessMeasuring();
        await using var primary = await RedisServer.StartNewAsync(cancellationToken: Lab.Ct);
        await using var replica = await RedisServer.StartNewAsync(new RedisServerOptions { ReplicaOfHost = primary.Host, ReplicaOfPort = primary.Port }, Lab.Ct);
        using var stock = Lab.CreateStock(replica.ConnectionString);
        Lab.Report($"STOCK replica: first Set {Time(() => stock.Set("k", Lab.Bytes("v"), new DistributedCacheEntryOptions()))}; second {Time(() => stock.Set("k", Lab.Bytes("v"), new DistributedCacheEntryOptions()))}");
    }

    [Theory]
    [InlineData("absent, started later")]
    [InlineData("unresolvable host")]
    [InlineData("TLS to a plain port")]
    public async Task Bad_or_absent_at_start_up(string configuration)
    {
        Lab.SkipUnlessMeasuring();
        await using var plain = await RedisServer.StartNewAsync(cancellationToken: Lab.Ct);
        var port = Lab.ClosedPort();
        using var stock = Lab.CreateStock(configuration switch
        {
            "unresolvable host" => Lab.UnresolvableHost + ":6379",
            "TLS to a plain port" => $"{plain.ConnectionString},ssl=true",
            _ => $"127.0.0.1:{port}",
        });
        var first = Time(() => stock.Get("k"));
        var second = Time(() => stock.Get("k"));
        var recovery = "n/a";
        if (configuration.StartsWith("absent", StringComparison.Ordinal))
        {
            await using var server = await RedisServer.StartNewAsync(new RedisServerOptions { Port = port }, Lab.Ct);
            var started = Stopwatch.StartNew();
            while (started.Elapsed < Observe && Time(() => stock.Get("k")).Error is not null)
            {
            }

            recovery = started.Elapsed < Observe ? $"{started.Elapsed.TotalMilliseconds:0} ms" : $"not within {Observe.TotalSeconds:0} s";
        }

        Lab.Report($"STOCK {configuration}: first {first}; second {second}; used after Redis started: {recovery}");
    }

    [Fact]
    public async Task Many_concurrent_callers_during_an_outage()
    {
        Lab.SkipUnlessMeasuring();
        await using var server = await RedisServer.StartNewAsync(cancellationToken: Lab.Ct);
        using var stock = Lab.CreateStock(server.ConnectionString);
        stock.Set("k", Lab.Bytes("v"), new DistributedCacheEntryOptions());
        server.Kill();
        var load = Stopwatch.StartNew();
        try
        {
            var results = await LoadTests.RunCallersAsync(stock, TimeSpan.FromSeconds(5));
            Lab.Report($"STOCK 256 callers, 5 s, Redis down: {results.Sum(r => r.Calls)} calls, {results.Sum(r => r.Errors)} threw, slowest {results.Max(r => r.Slowest).TotalMilliseconds:0} ms, all done after {load.Elapsed.TotalMilliseconds:0} ms");
        }
        catch (TimeoutException)
        {
            Lab.Report($"STOCK 256 callers, 5 s, Redis down: not all calls completed after {load.Elapsed.TotalMilliseconds:0} ms");
        }
    }

    [Fact]
    public async Task Session_read_fails_then_the_empty_session_is_written()
    {
        Lab.SkipUnlessMeasuring();
        await using var server = await RedisServer.StartNewAsync(cancellationToken: Lab.Ct);
        using var stock = Lab.CreateStock(server.ConnectionString);
        var entry = new DistributedCacheEntryOptions { SlidingExpiration = TimeSpan.FromMinutes(20) };
        stock.Set("session", Lab.Bytes("the real session"), entry);
        server.Pause();
        var read = Time(() => stock.Get("session"));
        var write = Time(() => stock.Set("session", Lab.Bytes("(new)"), entry));
        server.Resume();
        string? stored = null;
        var healed = Stopwatch.StartNew();
        while (healed.Elapsed < Observe && stored is null)
        {
            try
            {
                stored = Lab.Text(stock.Get("session"));
            }
            catch (Exception)
            {
                // Not reconnected yet.
            }
        }

        Lab.Report($"STOCK session: read {read}; write {write}; after resume the stored session is \"{stored}\"");
    }

    private static Fault ProxyFault(FaultProxy proxy, string name, FaultMode mode) =>
        new(name, () => { proxy.SetMode(mode); return Task.CompletedTask; }, () => { proxy.SetMode(FaultMode.PassThrough); return Task.CompletedTask; });

    /// <summary>Times one call of the stock provider, which throws when Redis fails.</summary>
    private static Timed Time(Action call)
    {
        var watch = Stopwatch.StartNew();
        try
        {
            call();
            return new Timed(watch.Elapsed, null);
        }
        catch (Exception exception)
        {
            return new Timed(watch.Elapsed, exception);
        }
    }


    private sealed record Timed(TimeSpan Elapsed, Exception? Error)
    {
        public override string ToString() =>
            $"{Elapsed.TotalMilliseconds:0} ms{(Error is null ? " ok" : $" {Error.GetType().Name}: {Error.Message.Split('\n')[0][..Math.Min(120, Error.Message.Split('\n')[0].Length)]}")}";
    }
}
