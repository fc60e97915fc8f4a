using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Caching.Distributed;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;
using Resilient.Caching.Configuration;
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
        var port = ReserveClosedPort();
        await using var app = await StartAppAsync($"127.0.0.1:{port}");
        var cache = app.Cache;

        var first = Stopwatch.StartNew();
        Assert.Null(await GetAsync(cache, "k", async));
        Lab.Report($"absent: first call {first.Elapsed.TotalMilliseconds:0} ms");
        Assert.True(first.Elapsed <= Lab.CallBound, $"the first call took {first.Elapsed.TotalMilliseconds:0} ms");

        // Redis comes up later on the configured port: the cache uses it after the window.
        await using var server = await RedisServer.StartNewAsync(new RedisServerOptions { Port = port }, Lab.Ct);
        var started = Stopwatch.StartNew();
        var bound = (2 * (Lab.Window + Lab.CallBound)) + Lab.Slack;
        var slowest = TimeSpan.Zero;
        while (!app.Availability.IsAvailable && started.Elapsed < bound)
        {
            var call = Stopwatch.StartNew();
            await SetAsync(cache, "k", "v", async);
            slowest = call.Elapsed > slowest ? call.Elapsed : slowest;
            await Task.Delay(20, Lab.Ct);
        }

        Lab.Report($"absent: used {started.Elapsed.TotalMilliseconds:0} ms after Redis started (slowest call meanwhile {slowest.TotalMilliseconds:0} ms)\n{app.DescribeLogs()}");
        Assert.True(app.Availability.IsAvailable, $"Redis was not used within {bound.TotalSeconds:0.#} s of starting.\n{app.DescribeLogs()}");
        Assert.True(slowest <= Lab.CallBound);
        await SetAsync(cache, "k", "v", async);
        Assert.Equal("v", Lab.Text(await GetAsync(cache, "k", async)));
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
            "closed port" => $"127.0.0.1:{ReserveClosedPort()}",
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
            await SetAsync(app.Cache, "k", "v", async);
            Assert.Null(await GetAsync(app.Cache, "k", async));
            calls.Add(call.Elapsed);
        }

        Lab.Report($"{configuration}: 20 set+get pairs, max {calls.Max().TotalMilliseconds:0} ms, total {calls.Sum(c => c.TotalMilliseconds):0} ms");
        Assert.All(calls, c => Assert.True(c <= Lab.CallBound, $"a request took {c.TotalMilliseconds:0} ms"));
        Assert.True(app.LogCount(Log.IdWindowOpened, LogLevel.Warning) + app.LogCount(Log.IdConnectFailed, LogLevel.Warning) >= 1);
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

    /// <summary>A loopback port nothing listens on (connections are refused); Redis may be started on it later.</summary>
    private static int ReserveClosedPort()
    {
        using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return ((IPEndPoint)listener.LocalEndPoint!).Port;
    }

    private static async Task<StartedApp> StartAppAsync(string configuration)
    {
        var logs = new FakeLogCollector();
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Logging.SetMinimumLevel(LogLevel.Debug).AddProvider(new FakeLoggerProvider(logs));
        builder.Services.AddSingleton(new EnvironmentVariables(_ => null));
        builder.Services.AddResilientStackExchangeRedisCache(o =>
        {
            o.Configuration = configuration;
            o.OperationTimeout = Lab.OperationTimeout;
            o.ConnectTimeout = Lab.ConnectTimeout;
            o.UnavailableWindow = Lab.Window;
        });
        var host = builder.Build();
        var start = Stopwatch.StartNew();
        await host.StartAsync(Lab.Ct);
        Lab.Report($"host started in {start.Elapsed.TotalMilliseconds:0} ms");
        Assert.True(start.Elapsed <= StartBound, $"the host took {start.Elapsed.TotalMilliseconds:0} ms to start");
        return new StartedApp(host, logs);
    }

    private static async Task<byte[]?> GetAsync(IDistributedCache cache, string key, bool async) =>
        async ? await cache.GetAsync(key, Lab.Ct) : cache.Get(key);

    private static async Task SetAsync(IDistributedCache cache, string key, string value, bool async)
    {
        if (async)
        {
            await cache.SetAsync(key, Lab.Bytes(value), new DistributedCacheEntryOptions(), Lab.Ct);
        }
        else
        {
            cache.Set(key, Lab.Bytes(value), new DistributedCacheEntryOptions());
        }
    }

    private sealed class StartedApp(IHost host, FakeLogCollector logs) : IAsyncDisposable
    {
        public IDistributedCache Cache { get; } = host.Services.GetRequiredService<IDistributedCache>();

        public CacheAvailability Availability { get; } = host.Services.GetRequiredService<CacheAvailability>();

        public int LogCount(int eventId, LogLevel level) => logs.GetSnapshot().Count(r => r.Id.Id == eventId && r.Level == level);

        public string DescribeLogs() =>
            string.Join('\n', logs.GetSnapshot().Select(r => $"{r.Timestamp:HH:mm:ss.fff} {r.Level} [{r.Id.Id}] {r.Message}"));

        public async ValueTask DisposeAsync()
        {
            await host.StopAsync(CancellationToken.None);
            host.Dispose();
        }
    }
}
