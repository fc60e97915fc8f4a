using System.Diagnostics;
using Microsoft.Extensions.Caching.StackExchangeRedis;
using Microsoft.Extensions.Options;
using Resilient.Caching.IntegrationTests.Infrastructure;
using Xunit;

namespace Resilient.Caching.IntegrationTests.FaultLab;

/// <summary>
/// The settings every lab scenario runs with, the timing bounds it asserts, and the one way the integration tests
/// wait for something. The window and timeouts are real (real Redis, real sockets), so they are short; the bounds
/// carry generous slack for a loaded 2-core CI machine.
/// </summary>
internal static class Lab
{
    public static readonly TimeSpan OperationTimeout = TimeSpan.FromMilliseconds(500);
    public static readonly TimeSpan ConnectTimeout = TimeSpan.FromSeconds(1);
    public static readonly TimeSpan Window = TimeSpan.FromSeconds(1.5);

    /// <summary>Scheduling noise allowed on top of any bound that comes from the settings.</summary>
    public static readonly TimeSpan Slack = TimeSpan.FromSeconds(1.5);

    /// <summary>No call may take longer than this: the operation timeout, plus slack.</summary>
    public static readonly TimeSpan CallBound = OperationTimeout + Slack;

    /// <summary>
    /// No call may take longer than this with the library's defaults (<see cref="UseDefaults"/>): the 5 s operation
    /// timeout, plus half a second.
    /// </summary>
    public static readonly TimeSpan DefaultsCallBound = new ResilientRedisCacheOptions().OperationTimeout + TimeSpan.FromMilliseconds(500);

    /// <summary>A call counts as "waited out the operation timeout" above this (short-circuited calls take microseconds).</summary>
    public static readonly TimeSpan SlowCall = OperationTimeout * 0.6;

    /// <summary>
    /// From a heal to Redis used again: what is left of the window, a probe that may still fail on the old path and
    /// one more window with its probe, plus slack.
    /// </summary>
    public static readonly TimeSpan RecoveryBound = (2 * (Window + CallBound)) + Slack;

    /// <summary>
    /// A host name that can never resolve, and whose failure the resolver reports without sending a query: a label
    /// longer than 63 characters is refused locally by getaddrinfo, so no DNS traffic leaves the machine.
    /// </summary>
    public static readonly string UnresolvableHost = new string('x', 64) + ".invalid";

    private static readonly TimeSpan PollEvery = TimeSpan.FromMilliseconds(20);

    public static CancellationToken Ct => TestContext.Current.CancellationToken;

    public static ITestOutputHelper? Output => TestContext.Current.TestOutputHelper;

    public static void Report(string line) => Output?.WriteLine(line);

    /// <summary>The lab's timeouts and window, for a test that registers the cache itself (a web app of its own).</summary>
    public static void Apply(ResilientRedisCacheOptions options)
    {
        options.OperationTimeout = OperationTimeout;
        options.ConnectTimeout = ConnectTimeout;
        options.UnavailableWindow = Window;
    }

    /// <summary>
    /// Back to the library's default timeouts (5 s), for a test about where calls go or what waits for them, not about
    /// how fast the lab's short settings react: a loaded machine must not turn a slow first connect into a skipped call.
    /// </summary>
    public static void UseDefaultTimeouts(ResilientRedisCacheOptions options)
    {
        var defaults = new ResilientRedisCacheOptions();
        options.OperationTimeout = defaults.OperationTimeout;
        options.ConnectTimeout = defaults.ConnectTimeout;
    }

    /// <summary>
    /// The library's defaults throughout (5 s timeouts, 30 s window, the kernel keep-alive of the options), for a
    /// scenario whose figures must be those an application gets without any setting.
    /// </summary>
    public static void UseDefaults(ResilientRedisCacheOptions options)
    {
        var defaults = new ResilientRedisCacheOptions();
        UseDefaultTimeouts(options);
        options.UnavailableWindow = defaults.UnavailableWindow;
        options.TcpKeepAlive.Idle = defaults.TcpKeepAlive.Idle;
        options.TcpKeepAlive.Interval = defaults.TcpKeepAlive.Interval;
        options.TcpKeepAlive.Count = defaults.TcpKeepAlive.Count;
    }

    /// <summary>Polls <paramref name="condition"/> until it holds or <paramref name="timeout"/> passes; false on time-out.</summary>
    public static Task<bool> EventuallyAsync(Func<bool> condition, TimeSpan timeout, TimeSpan? every = null) =>
        EventuallyAsync(() => Task.FromResult(condition()), timeout, every);

    /// <summary>As <see cref="EventuallyAsync(Func{bool}, TimeSpan, TimeSpan?)"/> with an asynchronous condition.</summary>
    public static async Task<bool> EventuallyAsync(Func<Task<bool>> condition, TimeSpan timeout, TimeSpan? every = null)
    {
        // Bounded in time, and in count should the clock stall: at most one try per period of the timeout, and one more.
        var period = every ?? PollEvery;
        var tries = (long)(timeout / period) + 2;
        var clock = Stopwatch.StartNew();
        for (var i = 0L; i < tries; i++)
        {
            if (await condition())
            {
                return true;
            }

            if (clock.Elapsed > timeout)
            {
                return false;
            }

            await Task.Delay(period, Ct);
        }

        return false;
    }

    /// <summary>
    /// As <see cref="EventuallyAsync(Func{Task{bool}}, TimeSpan, TimeSpan?)"/>, failing the test with
    /// <paramref name="what"/> on time-out; returns how long it took.
    /// </summary>
    public static async Task<TimeSpan> UntilAsync(string what, TimeSpan timeout, Func<Task<bool>> condition)
    {
        var clock = Stopwatch.StartNew();
        Assert.True(await EventuallyAsync(condition, timeout), $"{what}: not within {timeout.TotalSeconds:0.#} s");
        return clock.Elapsed;
    }

    /// <summary>
    /// Skips a measurement that records figures instead of asserting them (the stock provider, a failover): slow, and
    /// run on purpose with <c>FAULTLAB_BASELINE=1</c>.
    /// </summary>
    public static void SkipUnlessMeasuring()
    {
        if (Environment.GetEnvironmentVariable("FAULTLAB_BASELINE") is not "1")
        {
            Assert.Skip("a measurement, not a test: set FAULTLAB_BASELINE=1 to run it");
        }
    }

    /// <summary>
    /// A loopback port nothing listens on (connections are refused): a Redis that is absent, or that a test starts
    /// on it later. Another process could take it meanwhile, as with any free port.
    /// </summary>
    public static int ClosedPort() => RedisServer.FindFreePort("127.0.0.1");

    public static byte[] Bytes(string text) => System.Text.Encoding.UTF8.GetBytes(text);

    public static string? Text(byte[]? bytes) => bytes is null ? null : System.Text.Encoding.UTF8.GetString(bytes);

    /// <summary>The stock provider with its defaults, as an application gets it from <c>AddStackExchangeRedisCache</c>.</summary>
    public static RedisCache CreateStock(string configuration, Action<RedisCacheOptions>? setup = null)
    {
        var options = new RedisCacheOptions { Configuration = configuration };
        setup?.Invoke(options);
        return new RedisCache(Options.Create(options));
    }
}
