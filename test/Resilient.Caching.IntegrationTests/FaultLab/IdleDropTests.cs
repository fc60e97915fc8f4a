using System.Diagnostics;
using Resilient.Caching.IntegrationTests.Infrastructure;
using StackExchange.Redis;
using Xunit;

namespace Resilient.Caching.IntegrationTests.FaultLab;

/// <summary>
/// Scenario 4, the seed incident: a firewall silently forgets an idle pooled connection. With short keepalive
/// settings the client notices the dead connection by itself (the kernel's keepalive probes go unanswered and
/// TCP_USER_TIMEOUT bounds the wait), so the next request does not stall on it. The control without keepalive
/// notices nothing in the same time. StackExchange.Redis's own heartbeat PING (every KeepAlive seconds, 60 by
/// default) is pushed out to 10 minutes so that it cannot be what the test observes.
/// </summary>
public sealed class IdleDropTests
{
    // Idle 2 s + interval 1 s × count 2: noticed after about 4 s. The bound is three times that.
    private static readonly TimeSpan KeepAliveBudget = TimeSpan.FromSeconds(2 + (1 * 2));
    private static readonly TimeSpan NoticeBound = 3 * KeepAliveBudget;

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Keepalive_notices_a_silently_dropped_idle_connection_and_the_next_request_does_not_stall(bool async)
    {
        NetworkNamespaceRedis.SkipIfUnavailable();

        await using var redis = await NetworkNamespaceRedis.StartAsync(cancellationToken: Lab.Ct);
        using var lab = new LabCache(redis.ConnectionString, o => o.ConfigurationOptions = QuietHeartbeat(redis.ConnectionString));
        await lab.WarmUpAsync();
        var failed = await WatchConnectionFailedAsync(lab);
        Assert.True(KernelSockets.EstablishedTo(redis.Host, redis.Port) > 0);

        // The connection is idle; the firewall forgets it: from now on every packet is dropped.
        var idle = Stopwatch.StartNew();
        await redis.DropTrafficAsync();

        var noticed = await Task.WhenAny(failed.Task, Task.Delay(NoticeBound, Lab.Ct)) == failed.Task;
        var noticedAfter = idle.Elapsed;
        var failure = noticed ? await failed.Task : null;
        Lab.Report($"keepalive on: ConnectionFailed {(failure is not null ? $"after {noticedAfter.TotalSeconds:0.0} s ({failure.FailureType}, {failure.ConnectionType})" : $"not within {NoticeBound.TotalSeconds:0} s")}");
        Assert.True(noticed, $"the dead idle connection was not noticed within {NoticeBound.TotalSeconds:0} s");
        Assert.True(await Lab.EventuallyAsync(() => KernelSockets.EstablishedTo(redis.Host, redis.Port) == 0, Lab.Slack), "a socket to Redis is still established");

        // The next request, while the path is still dead, does not stall: the connection is known closed, and the
        // request waits at most for the verdict on what may be a blip, within its own operation timeout.
        var call = Stopwatch.StartNew();
        Assert.Null(await lab.Cache.GetAsync("k", async));
        Lab.Report($"keepalive on: first request after the drop took {call.Elapsed.TotalMilliseconds:0} ms");
        Assert.True(call.Elapsed < Lab.CallBound, $"the first request after the drop took {call.Elapsed.TotalMilliseconds:0} ms");

        // The path heals: the cache is used again after the window.
        await redis.RestoreTrafficAsync();
        var after = await lab.UsedAgainAsync(async);
        Lab.Report($"used again {after.TotalMilliseconds:0} ms after the path healed");
    }

    [Fact]
    public async Task Without_keepalive_the_dropped_idle_connection_goes_unnoticed()
    {
        NetworkNamespaceRedis.SkipIfUnavailable();

        await using var redis = await NetworkNamespaceRedis.StartAsync(cancellationToken: Lab.Ct);
        using var lab = new LabCache(redis.ConnectionString, o =>
        {
            o.SocketKeepAlive = false;
            o.ConfigurationOptions = QuietHeartbeat(redis.ConnectionString);
        });
        await lab.WarmUpAsync();
        var failed = await WatchConnectionFailedAsync(lab);
        await redis.DropTrafficAsync();

        var noticed = await Task.WhenAny(failed.Task, Task.Delay(NoticeBound, Lab.Ct)) == failed.Task;
        Lab.Report($"keepalive off: ConnectionFailed {(noticed ? "fired" : $"not within {NoticeBound.TotalSeconds:0} s")}");
        Assert.False(noticed, "the control noticed the drop although keepalive is off: the test would not show what keepalive does");
        Assert.True(KernelSockets.EstablishedTo(redis.Host, redis.Port) > 0, "the socket is gone although keepalive is off");

        // The seed incident: the next request meets the dead connection and waits out the operation timeout.
        var call = Stopwatch.StartNew();
        Assert.Null(lab.Cache.Get("k"));
        Lab.Report($"keepalive off: first request after the drop took {call.Elapsed.TotalMilliseconds:0} ms");
        Assert.True(call.Elapsed >= Lab.SlowCall, $"the first request after the drop took only {call.Elapsed.TotalMilliseconds:0} ms");
    }

    /// <summary>Our settings apply on top of these (they are cloned); only StackExchange.Redis's own PING is pushed out.</summary>
    internal static ConfigurationOptions QuietHeartbeat(string configuration)
    {
        var options = ConfigurationOptions.Parse(configuration);
        options.KeepAlive = 600;
        return options;
    }

    private static async Task<TaskCompletionSource<ConnectionFailedEventArgs>> WatchConnectionFailedAsync(LabCache lab)
    {
        var failed = new TaskCompletionSource<ConnectionFailedEventArgs>(TaskCreationOptions.RunContinuationsAsynchronously);
        var multiplexer = await lab.GetMultiplexerAsync();
        multiplexer.ConnectionFailed += (_, e) => failed.TrySetResult(e);
        return failed;
    }
}
