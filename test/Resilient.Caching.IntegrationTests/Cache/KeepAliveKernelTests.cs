using Microsoft.Extensions.Caching.Distributed;
using Microsoft.Extensions.Caching.StackExchangeRedis;
using Microsoft.Extensions.Options;
using Resilient.Caching.IntegrationTests.FaultLab;
using Resilient.Caching.IntegrationTests.Infrastructure;
using Xunit;

namespace Resilient.Caching.IntegrationTests.Cache;

/// <summary>
/// Proves the socket tuning where it matters, in the kernel: every established client socket to Redis has its
/// keepalive timer armed with at most the configured idle time left — including after a reconnect.
/// </summary>
public sealed class KeepAliveKernelTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task DefaultSettings_ArmKeepAliveWithin60Seconds_OnEverySocket()
    {
        KernelSockets.SkipUnlessLinux();
        await using var redis = await RedisServer.StartNewAsync(cancellationToken: Ct);
        using var host = new LabCache(redis.ConnectionString, o => o.TcpKeepAlive.Idle = ResilientDefaults.Idle);

        await host.Cache.SetStringAsync("k", "v", Ct);

        var sockets = await WaitForIdleSockets(redis.Port, expectedAtLeast: 1);
        Assert.All(sockets, s =>
        {
            Assert.True(s.KeepAliveArmed, $"no keepalive timer on {s.Local} (tr={s.Timer})");
            Assert.InRange(s.TimerExpiresIn, TimeSpan.FromSeconds(50), TimeSpan.FromSeconds(60));
        });
    }

    [Fact]
    public async Task TcpKeepAliveIdle7_FromTheEnvironment_ArmsTheTimerWithin7Seconds_AlsoAfterReconnect()
    {
        KernelSockets.SkipUnlessLinux();
        await using var redis = await RedisServer.StartNewAsync(cancellationToken: Ct);
        // The code says 60 s (the default); the environment variable must win.
        using var host = new LabCache(
            redis.ConnectionString, o => o.TcpKeepAlive.Idle = ResilientDefaults.Idle, name => name == "TCP_KEEPALIVE_IDLE" ? "7" : null);

        await host.Cache.SetStringAsync("k", "v", Ct);
        var before = await WaitForIdleSockets(redis.Port, expectedAtLeast: 1);
        AssertArmedWithin(before, TimeSpan.FromSeconds(7));

        // Redis drops every client; StackExchange.Redis reconnects on its own, through the same hook.
        await redis.ExecuteAsync("CLIENT", "KILL", "TYPE", "normal");
        await redis.ExecuteAsync("CLIENT", "KILL", "TYPE", "pubsub");
        var ports = before.Select(s => s.Local.Port).ToHashSet();
        var after = await WaitFor(
            () => KernelSockets.ClientSocketsTo(redis.Port) is { Count: > 0 } now && now.All(s => !ports.Contains(s.Local.Port) && s.KeepAliveArmed) ? now : null,
            "reconnected sockets");
        AssertArmedWithin(after, TimeSpan.FromSeconds(7));
    }

    [Fact]
    public async Task Control_TheStockProvidersSockets_LackOurTimer()
    {
        KernelSockets.SkipUnlessLinux();
        await using var redis = await RedisServer.StartNewAsync(cancellationToken: Ct);
        using var stock = new RedisCache(Options.Create(new RedisCacheOptions { Configuration = redis.ConnectionString }));

        await stock.SetStringAsync("k", "v", Ct);

        var sockets = await WaitForIdleSockets(redis.Port, expectedAtLeast: 1);
        Assert.All(sockets, s => Assert.True(
            !s.KeepAliveArmed || s.TimerExpiresIn > TimeSpan.FromSeconds(3600),
            $"stock socket {s.Local} has a keepalive timer of {s.TimerExpiresIn} (expected none, or the OS default of 7200 s)"));
    }

    private static void AssertArmedWithin(IReadOnlyList<KernelSockets.TcpSocket> sockets, TimeSpan idle) =>
        Assert.All(sockets, s =>
        {
            Assert.True(s.KeepAliveArmed, $"no keepalive timer on {s.Local} (tr={s.Timer})");
            Assert.InRange(s.TimerExpiresIn, TimeSpan.Zero, idle);
        });

    /// <summary>Waits until the client sockets are idle: a socket with unacknowledged data shows the retransmit timer instead.</summary>
    private static Task<IReadOnlyList<KernelSockets.TcpSocket>> WaitForIdleSockets(int port, int expectedAtLeast) =>
        WaitFor(() => KernelSockets.ClientSocketsTo(port) is { } now && now.Count >= expectedAtLeast && now.All(s => s.Timer != 1) ? now : null, "idle client sockets");

    private static async Task<IReadOnlyList<KernelSockets.TcpSocket>> WaitFor(Func<IReadOnlyList<KernelSockets.TcpSocket>?> probe, string what)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(15);
        while (true)
        {
            if (probe() is { } result)
            {
                return result;
            }

            Assert.True(DateTime.UtcNow < deadline, $"timed out waiting for {what}");
            await Task.Delay(50, Ct);
        }
    }


    private static class ResilientDefaults
    {
        public static readonly TimeSpan Idle = new ResilientRedisCacheOptions().TcpKeepAlive.Idle;
    }
}
