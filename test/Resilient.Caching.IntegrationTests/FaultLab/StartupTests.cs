using System.Diagnostics;
using Microsoft.Extensions.Logging;
using Resilient.Caching.IntegrationTests.Infrastructure;
using Xunit;

namespace Resilient.Caching.IntegrationTests.FaultLab;

/// <summary>
/// Scenarios 7 and 10: the application starts while Redis is absent or misconfigured. Start-up never blocks on
/// Redis, says clearly what is wrong, and the application works (uncached) at once; Redis is used once it is there.
/// </summary>
public sealed class StartupTests
{
    private static readonly TimeSpan StartBound = TimeSpan.FromSeconds(2);

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Redis_absent_at_start_up_is_used_once_it_starts(bool async)
    {
        var port = Lab.ClosedPort();
        await using var app = await StartAppAsync($"127.0.0.1:{port}");
        var cache = app.Cache;

        var first = Stopwatch.StartNew();
        Assert.Null(await cache.GetAsync("k", async));
        Lab.Report($"absent: first call {first.Elapsed.TotalMilliseconds:0} ms");
        Assert.True(first.Elapsed <= Lab.CallBound, $"the first call took {first.Elapsed.TotalMilliseconds:0} ms");

        // Redis comes up later on the configured port: the cache uses it after the window.
        await using var server = await RedisServer.StartNewAsync(new RedisServerOptions { Port = port }, Lab.Ct);
        var started = Stopwatch.StartNew();
        var slowest = TimeSpan.Zero;
        var used = await Lab.EventuallyAsync(
            async () =>
            {
                var call = Stopwatch.StartNew();
                await cache.SetAsync("k", Lab.Bytes("v"), async);
                slowest = call.Elapsed > slowest ? call.Elapsed : slowest;
                return app.Availability.IsAvailable;
            },
            Lab.RecoveryBound);

        Lab.Report($"absent: used {started.Elapsed.TotalMilliseconds:0} ms after Redis started (slowest call meanwhile {slowest.TotalMilliseconds:0} ms)\n{app.DescribeLogs()}");
        Assert.True(used, $"Redis was not used within {Lab.RecoveryBound.TotalSeconds:0.#} s of starting.\n{app.DescribeLogs()}");
        Assert.True(slowest <= Lab.CallBound);
        await cache.SetAsync("k", Lab.Bytes("v"), async);
        Assert.Equal("v", Lab.Text(await cache.GetAsync("k", async)));
    }

    public static TheoryData<string, bool> BadConfigurations => new()
    {
        { "unresolvable host", false },
        { "unresolvable host", true },
        { "closed port", false },
        { "closed port", true },
        { "TLS to a plain port", false },
        { "TLS to a plain port", true },
    };

    [Theory]
    [MemberData(nameof(BadConfigurations))]
    public async Task Bad_configuration_never_takes_the_app_down(string configuration, bool async)
    {
        await using var plain = await RedisServer.StartNewAsync(cancellationToken: Lab.Ct);
        var connectionString = configuration switch
        {
            "unresolvable host" => Lab.UnresolvableHost + ":6379",
            "closed port" => $"127.0.0.1:{Lab.ClosedPort()}",
            _ => $"{plain.ConnectionString},ssl=true",
        };
        await using var app = await StartAppAsync(connectionString);

        // At start-up, without any request: the settings line, then a Warning once the first connect has failed.
        Assert.Equal(1, app.LogCount(Log.IdSettingsInForce, LogLevel.Information));
        var warned = await Lab.EventuallyAsync(() => app.LogCount(Log.IdConnectFailed, LogLevel.Warning) > 0, (3 * Lab.ConnectTimeout) + Lab.Slack);
        Lab.Report($"{configuration}: start-up log:\n{app.DescribeLogs()}");
        Assert.True(warned, "no Warning at start-up although the first connect failed");

        // Requests work (uncached): misses, quickly, no exception.
        var calls = new List<TimeSpan>();
        for (var i = 0; i < 20; i++)
        {
            var call = Stopwatch.StartNew();
            await app.Cache.SetAsync("k", Lab.Bytes("v"), async);
            Assert.Null(await app.Cache.GetAsync("k", async));
            calls.Add(call.Elapsed);
        }

        Lab.Report($"{configuration}: 20 set+get pairs, max {calls.Max().TotalMilliseconds:0} ms, total {calls.Sum(c => c.TotalMilliseconds):0} ms");
        Assert.All(calls, c => Assert.True(c <= Lab.CallBound, $"a request took {c.TotalMilliseconds:0} ms"));
        Assert.True(
            await Lab.EventuallyAsync(() => app.LogCount(Log.IdWindowOpened, LogLevel.Warning) + app.LogCount(Log.IdConnectFailed, LogLevel.Warning) >= 1, Lab.Slack),
            app.DescribeLogs());
    }

    [Fact]
    public async Task Concurrent_first_calls_during_a_slow_connect_are_each_bounded_by_the_operation_timeout()
    {
        // Redis accepts the TCP connection but never answers the handshake, and connecting may take longer than a
        // command (the defaults are 5 s each; here 3 s against 0.5 s). Eight requests arrive together at a cold start.
        await using var server = await RedisServer.StartNewAsync(cancellationToken: Lab.Ct);
        await using var proxy = new FaultProxy(server.Host, server.Port);
        proxy.SetMode(FaultMode.Blackhole);
        using var lab = new LabCache(proxy.ConnectionString, o => o.ConnectTimeout = TimeSpan.FromSeconds(3));

        using var go = new ManualResetEventSlim();
        var calls = Enumerable.Range(0, 8).Select(i => Task.Factory.StartNew(
            async () =>
            {
                go.Wait(Lab.Ct);
                var call = Stopwatch.StartNew();
                _ = i % 2 == 0 ? lab.Cache.Get("k") : await lab.Cache.GetAsync("k", Lab.Ct);
                return call.Elapsed;
            },
            CancellationToken.None,
            TaskCreationOptions.LongRunning,
            TaskScheduler.Default).Unwrap()).ToArray();
        go.Set();
        var elapsed = await Task.WhenAll(calls).WaitAsync(TimeSpan.FromSeconds(30), Lab.Ct);

        Lab.Report($"8 concurrent first calls during a slow connect: {string.Join(", ", elapsed.Order().Select(e => $"{e.TotalMilliseconds:0}"))} ms\n{lab.DescribeLogs()}");
        Assert.All(elapsed, e => Assert.True(e <= Lab.CallBound, $"a first call took {e.TotalMilliseconds:0} ms (bound {Lab.CallBound.TotalMilliseconds:0} ms)"));
    }

    /// <summary>The lab's cache in a started host, as an application starts; start-up must not wait for Redis.</summary>
    private static async Task<LabCache> StartAppAsync(string configuration)
    {
        var app = new LabCache(configuration);
        var start = Stopwatch.StartNew();
        await app.StartAsync();
        Lab.Report($"host started in {start.Elapsed.TotalMilliseconds:0} ms");
        Assert.True(start.Elapsed <= StartBound, $"the host took {start.Elapsed.TotalMilliseconds:0} ms to start");
        return app;
    }
}
