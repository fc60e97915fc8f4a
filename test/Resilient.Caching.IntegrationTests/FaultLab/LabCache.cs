using System.Diagnostics;
using Microsoft.Extensions.Caching.Distributed;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;
using Resilient.Caching.Configuration;
using Resilient.Caching.IntegrationTests.Infrastructure;
using StackExchange.Redis;
using Xunit;

namespace Resilient.Caching.IntegrationTests.FaultLab;

/// <summary>
/// The resilient cache under test, registered in a generic host exactly as an application registers it, with the
/// lab settings and its logs captured. The host is not started unless a test asks (<see cref="StartAsync"/>), so
/// nothing connects before the first call. Every integration test that needs the cache without a web server builds
/// it here; the consumers it needs besides (output cache, health check, meter) are added through <c>services</c>.
/// </summary>
internal sealed class LabCache : IDisposable, IAsyncDisposable
{
    private readonly IHost _host;
    private bool _started;

    /// <param name="configuration">The Redis connection string.</param>
    /// <param name="setup">Settings on top of the lab's.</param>
    /// <param name="environment">The flat environment variables the cache sees (none by default).</param>
    /// <param name="services">Registrations besides the cache.</param>
    public LabCache(
        string configuration,
        Action<ResilientRedisCacheOptions>? setup = null,
        Func<string, string?>? environment = null,
        Action<IServiceCollection>? services = null)
    {
        // No defaults: no appsettings.json and no Redis__* variables of the machine running the tests.
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.ConfigureContainer(new DefaultServiceProviderFactory(new ServiceProviderOptions { ValidateOnBuild = true }));
        builder.Logging.SetMinimumLevel(LogLevel.Debug).AddProvider(new FakeLoggerProvider(Logs));

        // The flat environment variables are process-wide and tests run in parallel: each cache gets its own view.
        builder.Services.AddSingleton(new EnvironmentVariables(environment ?? (_ => null)));
        builder.Services.AddResilientStackExchangeRedisCache(o =>
        {
            o.Configuration = configuration;
            Lab.Apply(o);
            o.TcpKeepAlive.Idle = TimeSpan.FromSeconds(2);
            o.TcpKeepAlive.Interval = TimeSpan.FromSeconds(1);
            o.TcpKeepAlive.Count = 2;
            setup?.Invoke(o);
        });
        services?.Invoke(builder.Services);
        _host = builder.Build();
        Cache = (ResilientDistributedCache)Provider.GetRequiredService<IDistributedCache>();
        Availability = Provider.GetRequiredService<CacheAvailability>();
        Services = Provider.GetRequiredService<ResilientRedisCacheServices>();
    }

    public FakeLogCollector Logs { get; } = new();

    public ResilientDistributedCache Cache { get; }

    public CacheAvailability Availability { get; }

    /// <summary>The application's container, for the consumers added besides the cache.</summary>
    public IServiceProvider Provider => _host.Services;

    internal ResilientRedisCacheServices Services { get; }

    /// <summary>Starts the host, as an application starts; the host is stopped when this is disposed asynchronously.</summary>
    public async Task StartAsync()
    {
        await _host.StartAsync(Lab.Ct);
        _started = true;
    }

    /// <summary>
    /// Waits (outside the window) until the connection is made: a cold first connect can take longer than the short
    /// operation timeout, and the test would then start with an open window.
    /// </summary>
    public async Task WaitForConnectionAsync() =>
        Assert.True(await Services.Connection.WaitReadyAsync(TimeSpan.FromSeconds(10), Lab.Ct), $"no connection within 10 s.\n{DescribeLogs()}");

    /// <summary>The multiplexer the cache currently uses (connecting first if there is none).</summary>
    public async Task<IConnectionMultiplexer> GetMultiplexerAsync()
    {
        await WaitForConnectionAsync();
        return await Services.Connection.GetMultiplexerAsync();
    }

    /// <summary>A position in the log, to count only what was logged after it.</summary>
    public int LogMark() => Logs.GetSnapshot().Count;

    /// <summary>How many records with this event id were logged (optionally at exactly this level, after a mark).</summary>
    public int LogCount(int eventId, LogLevel? level = null, int since = 0) =>
        Logs.GetSnapshot().Skip(since).Count(r => r.Id.Id == eventId && (level is null || r.Level == level));

    /// <summary>
    /// Waits (at most <see cref="Lab.Slack"/>) until <paramref name="count"/> records match, and asserts that no more
    /// than that did. A transition is visible to callers (and to <see cref="CacheAvailability.IsOutage"/>)
    /// a moment before its log record is written, outside the window's lock: a test that counts records right after it
    /// saw the state change must give that moment.
    /// </summary>
    public async Task AssertLoggedAsync(Func<FakeLogRecord, bool> match, int count = 1)
    {
        var reached = await Lab.EventuallyAsync(() => Logs.GetSnapshot().Count(match) >= count, Lab.Slack);
        Assert.True(reached, $"expected {count} matching log record(s), found {Logs.GetSnapshot().Count(match)}.\n{DescribeLogs()}");
        Assert.Equal(count, Logs.GetSnapshot().Count(match));
    }

    /// <summary>
    /// The outage events logged so far, each counted at its own level (a started host logs events 1 and 2 of its own,
    /// at Debug), for a test's figures.
    /// </summary>
    public string DescribeOutageEvents() =>
        $"windows opened {LogCount(Log.IdWindowOpened, LogLevel.Warning)}, probes failed {LogCount(Log.IdProbeFailed, LogLevel.Warning)}, " +
        $"closed {LogCount(Log.IdWindowClosed, LogLevel.Information)}, failures suspected {LogCount(Log.IdFailureSuspected, LogLevel.Debug)}, " +
        $"blips {LogCount(Log.IdBlipRecovered, LogLevel.Debug)}, credentials refused {LogCount(Log.IdAuthenticationFailed, LogLevel.Error)}";

    /// <summary>
    /// The connection made (waited for outside the window, as <see cref="WaitForConnectionAsync"/>), then a write and a
    /// read, so a scenario starts measuring on a cache in use. A first call on a cold cache that waits longer for its
    /// connection than what is left of the operation timeout takes its fallback by design: on a loaded machine the
    /// warm-up would then begin with a skipped write.
    /// </summary>
    public async Task WarmUpAsync()
    {
        await WaitForConnectionAsync();
        var warm = await Lab.EventuallyAsync(
            async () =>
            {
                await Cache.SetAsync("lab:warm-up", Lab.Bytes("warm"), new DistributedCacheEntryOptions(), Lab.Ct);
                return await Cache.GetAsync("lab:warm-up", Lab.Ct) is not null;
            },
            Lab.RecoveryBound);
        Assert.True(warm, $"the warm-up write was not read back.\n{DescribeLogs()}");
        Assert.True(Availability.IsAvailable, $"the cache did not warm up.\n{DescribeLogs()}");
    }

    /// <summary>Completes when the window opens (<paramref name="available"/> false) or closes (true), whichever is asked.</summary>
    public async Task WaitForAvailabilityAsync(bool available, TimeSpan timeout)
    {
        var changed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        void OnChanged(bool now)
        {
            if (now == available)
            {
                changed.TrySetResult();
            }
        }

        Availability.Changed += OnChanged;
        try
        {
            if (Availability.IsOutage == available)
            {
                await changed.Task.WaitAsync(timeout, Lab.Ct);
            }
        }
        finally
        {
            Availability.Changed -= OnChanged;
        }
    }

    /// <summary>
    /// Reads a key of its own until the window is open (a confirmed outage, not a suspicion being checked), once a
    /// fault is injected, for at most <paramref name="within"/> (by default <see cref="Lab.RecoveryBound"/>); returns
    /// how long it took. A frozen Redis times the first read out, and that opens it.
    /// </summary>
    public async Task<TimeSpan> OpenWindowAsync(bool async = true, TimeSpan? within = null)
    {
        var bound = within ?? Lab.RecoveryBound;
        var clock = Stopwatch.StartNew();
        var opened = await Lab.EventuallyAsync(
            async () =>
            {
                _ = await Cache.GetAsync("lab:window-opener", async);
                return Availability.IsOutage;
            },
            bound);
        Assert.True(opened, $"the window did not open within {bound.TotalSeconds:0.#} s.\n{DescribeLogs()}");
        return clock.Elapsed;
    }

    /// <summary>
    /// A real outage around what a test does inside it: freezes Redis (SIGSTOP), reads until the window opens, runs
    /// <paramref name="inside"/>, then lets Redis go and reads until a probe closes the window, so that whatever the test
    /// does next, Redis is in use again.
    /// </summary>
    public async Task WhileRedisIsFrozenAsync(RedisServer server, bool async, Func<Task> inside)
    {
        server.Pause();
        try
        {
            await OpenWindowAsync(async);
            await inside();
            Assert.True(Availability.IsOutage, $"the window closed while Redis was frozen.\n{DescribeLogs()}");
        }
        finally
        {
            server.Resume();
        }

        await RecoverAsync(async);
    }

    /// <summary>
    /// Reads until a probe closes the window (it applies what is pending first), for at most <paramref name="within"/>
    /// (by default <see cref="Lab.RecoveryBound"/>); returns how long it took. After a heal, nothing else calls: the
    /// window only closes when a call starts the probe.
    /// </summary>
    public async Task<TimeSpan> RecoverAsync(bool async = true, TimeSpan? within = null)
    {
        var bound = within ?? Lab.RecoveryBound;
        var clock = Stopwatch.StartNew();
        var recovered = await Lab.EventuallyAsync(
            async () =>
            {
                _ = await Cache.GetAsync("lab:recovery-trigger", async);
                return Availability.IsAvailable;
            },
            bound);
        Assert.True(recovered, $"the window did not close within {bound.TotalSeconds:0.#} s.\n{DescribeLogs()}");
        return clock.Elapsed;
    }

    /// <summary>
    /// Waits until nothing the outage left is pending. The probe applies what is pending before the window closes;
    /// records made while it did (the reads that drive a recovery make some) are applied just after the close, off
    /// every caller's path, so on a loaded machine the count reaches zero a moment after the window closed.
    /// </summary>
    public async Task NothingPendingAsync()
    {
        var applied = await Lab.EventuallyAsync(() => Availability.PendingInvalidations == 0, Lab.CallBound + Lab.Slack);
        Assert.True(applied, $"{Availability.PendingInvalidations} invalidations still pending after the recovery.\n{DescribeLogs()}");
    }

    /// <summary>
    /// Writes a fresh key and reads it back until the value comes back from Redis, for at most
    /// <paramref name="within"/> (by default <see cref="Lab.RecoveryBound"/>; zero: the first try must hit); returns
    /// how long it took. A fresh key each try, because a key read during the outage is deleted at recovery.
    /// </summary>
    public async Task<TimeSpan> UsedAgainAsync(bool async, TimeSpan? within = null)
    {
        var bound = within ?? Lab.RecoveryBound;
        var elapsed = await TryUsedAgainAsync(async, bound);
        Assert.True(elapsed is not null, $"the cache was not used again within {bound.TotalSeconds:0.#} s.\n{DescribeLogs()}");
        Assert.True(Availability.IsAvailable, $"a read hit but the window is open.\n{DescribeLogs()}");
        return elapsed.Value;
    }

    /// <summary>As <see cref="UsedAgainAsync"/>, for a measurement that reports its figures before asserting: null when no read hit within <paramref name="within"/>.</summary>
    public async Task<TimeSpan?> TryUsedAgainAsync(bool async, TimeSpan within)
    {
        var value = Lab.Bytes("again");
        var clock = Stopwatch.StartNew();
        var hit = await Lab.EventuallyAsync(
            async () =>
            {
                var key = $"used-again:{Guid.NewGuid():N}";
                await Cache.SetAsync(key, value, async);
                return await Cache.GetAsync(key, async) is { } read && read.SequenceEqual(value);
            },
            within);
        return hit ? clock.Elapsed : null;
    }

    /// <summary>The captured log, one record a line, for a failure message or the test output.</summary>
    public string DescribeLogs() =>
        string.Join('\n', Logs.GetSnapshot().Select(r => $"{r.Timestamp:HH:mm:ss.fff} {r.Level} [{r.Id.Id}] {r.Message}"));

    public void Dispose() => _host.Dispose();

    public async ValueTask DisposeAsync()
    {
        if (_started)
        {
            _started = false;
            await _host.StopAsync(CancellationToken.None);
        }

        if (_host is IAsyncDisposable disposable)
        {
            await disposable.DisposeAsync();
        }
        else
        {
            _host.Dispose();
        }
    }
}
