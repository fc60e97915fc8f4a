using System.Diagnostics;
using System.Text;
using Microsoft.Extensions.Caching.Distributed;
using Resilient.Caching.IntegrationTests.FaultLab;
using Resilient.Caching.IntegrationTests.Infrastructure;
using Xunit;

namespace Resilient.Caching.IntegrationTests.Topologies;

/// <summary>
/// The socket tuning on every connection a multiplexer makes in a topology, read back from the kernel: to every
/// cluster node (primaries and replicas) and to every sentinel and the primary they name, interactive and
/// subscription, and again on the connections made after a failover (to the promoted replica, and to the killed
/// primary once it is back): the keepalive timer armed (/proc/net/tcp), and SO_KEEPALIVE, the keepalive timings and
/// TCP_USER_TIMEOUT as configured (getsockopt on each socket).
/// </summary>
public sealed class TopologyKeepAliveTests
{
    private static readonly TimeSpan Idle = TimeSpan.FromSeconds(7);
    private static readonly TimeSpan Interval = TimeSpan.FromSeconds(1);
    private const int Count = 2;
    private static readonly TimeSpan Settle = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan PromotionBound = TimeSpan.FromSeconds(20);

    [Fact]
    public async Task Cluster_every_socket_to_every_node_has_keepalive_also_after_a_failover()
    {
        KernelSockets.SkipUnlessLinux();
        await using var cluster = await RedisCluster.StartAsync(new RedisClusterOptions { RequireFullCoverage = false }, Lab.Ct);
        using var cache = new TopologyCache(Provider.Resilient, cluster.ConnectionString, "app:", Tune);
        var primaries = await cluster.GetPrimariesAsync();
        var keys = await KeysOnEveryShardAsync(cluster, primaries);
        await ServeEveryShardAsync(cache.Cache, keys);

        var before = await AssertKeepAliveOnEveryConnectionAsync([.. cluster.Nodes.Select(n => n.Server)]);

        var killed = primaries[0];
        var replica = await cluster.GetReplicaOfAsync(killed);
        var killedAt = Stopwatch.GetTimestamp();
        killed.Kill();
        await cluster.WaitForPromotionAsync(replica, killedAt, PromotionBound);
        await killed.RestartAsync(Lab.Ct);
        await cluster.WaitForHealthyAsync(PromotionBound);
        await ServeEveryShardAsync(cache.Cache, keys);

        var after = await AssertKeepAliveOnEveryConnectionAsync([.. cluster.Nodes.Select(n => n.Server)]);
        var reconnected = after.Where(p => !before.Contains(p)).ToList();
        Assert.True(reconnected.Count > 0, "no connection was made after the failover");
        Lab.Report($"cluster: {before.Count} sockets before, {after.Count} after the failover ({reconnected.Count} new)");
    }

    [Fact]
    public async Task Sentinel_every_socket_to_every_sentinel_and_the_primary_has_keepalive_also_after_a_failover()
    {
        KernelSockets.SkipUnlessLinux();
        await using var sentinel = await RedisSentinel.StartAsync(cancellationToken: Lab.Ct);
        using var cache = new TopologyCache(Provider.Resilient, sentinel.ConnectionString, "app:", Tune);
        await ServeEveryShardAsync(cache.Cache, ["sentinel-key"]);

        var primary = await sentinel.GetPrimaryAsync();
        var before = await AssertKeepAliveOnEveryConnectionAsync([.. sentinel.Sentinels, primary]);

        var killedAt = Stopwatch.GetTimestamp();
        primary.Kill();
        var promotion = await sentinel.WaitForPromotionAsync(primary, killedAt, PromotionBound);
        await ServeEveryShardAsync(cache.Cache, ["sentinel-key"]);

        var after = await AssertKeepAliveOnEveryConnectionAsync([.. sentinel.Sentinels, promotion.NewPrimary]);
        var reconnected = after.Where(p => !before.Contains(p)).ToList();
        Assert.True(reconnected.Count > 0, "no connection was made to the new primary");
        Lab.Report($"sentinel: {before.Count} sockets before, {after.Count} after the failover ({reconnected.Count} new)");
    }

    private static void Tune(ResilientRedisCacheOptions options)
    {
        options.TcpKeepAlive.Idle = Idle;
        options.TcpKeepAlive.Interval = Interval;
        options.TcpKeepAlive.Count = Count;
    }

    private static async Task<IReadOnlyList<string>> KeysOnEveryShardAsync(RedisCluster cluster, IReadOnlyList<ClusterNode> primaries)
    {
        List<string> keys = [];
        foreach (var primary in primaries)
        {
            keys.AddRange(await cluster.KeysOnAsync(primary, 1, "app:", "keepalive"));
        }

        return keys;
    }

    /// <summary>Writes and reads each key until all of them round-trip (the cache may skip calls while a topology settles).</summary>
    private static async Task ServeEveryShardAsync(IDistributedCache cache, IReadOnlyList<string> keys)
    {
        var pending = keys.ToHashSet();
        var deadline = Stopwatch.StartNew();
        while (pending.Count > 0)
        {
            foreach (var key in pending.ToList())
            {
                var value = Encoding.UTF8.GetBytes(key);
                await cache.SetAsync(key, value, new DistributedCacheEntryOptions(), Lab.Ct);
                if ((await cache.GetAsync(key, Lab.Ct))?.SequenceEqual(value) == true)
                {
                    pending.Remove(key);
                }
            }

            Assert.True(deadline.Elapsed < Settle, $"not served within {Settle.TotalSeconds:0} s: {string.Join(", ", pending)}");
            await Task.Delay(100, Lab.Ct);
        }
    }

    /// <summary>
    /// Waits until this process (the multiplexer: no other connection is open while this runs) holds an interactive
    /// and a subscription connection to every server and its sockets are idle, then asserts that each socket has the
    /// keepalive timer armed within <see cref="Idle"/>, SO_KEEPALIVE on, the timings as configured and TCP_USER_TIMEOUT
    /// = idle + interval × count. Returns the sockets' local ports.
    /// </summary>
    private static async Task<IReadOnlySet<int>> AssertKeepAliveOnEveryConnectionAsync(IReadOnlyList<RedisServer> servers)
    {
        var deadline = Stopwatch.StartNew();
        while (true)
        {
            var report = new StringBuilder();
            var ready = true;
            List<KernelSockets.TcpSocket> sockets = [];
            foreach (var server in servers)
            {
                var own = KernelSockets.OwnSocketsTo(server.Port);
                var clients = (await ServerClients.ListAsync(server)).Where(c => own.Any(s => s.Local.Port == c.ClientPort)).ToList();
                report.Append($"\n{server.Port}: ").AppendJoin(", ", own.Select(s => clients.FirstOrDefault(c => c.ClientPort == s.Local.Port) is var c
                    ? $"{s.Local.Port} {(c is null ? "unknown to the server" : c.Subscriber ? "subscription" : "interactive")} cmd={c?.LastCommand} tr={s.Timer} in {s.TimerExpiresIn.TotalSeconds:0.0} s"
                    : string.Empty));

                // No socket with data in flight: it would show the retransmit timer instead.
                ready &= clients.Any(c => !c.Subscriber) && clients.Any(c => c.Subscriber) && own.All(s => s.Timer != 1);
                sockets.AddRange(own);
            }

            // A socket closed since the listing has no options to read: look again.
            var options = sockets.Select(s => KernelSockets.OwnSocketOptions(s.Inode)).ToList();
            if (ready && options.All(o => o is not null))
            {
                Lab.Report(report.AppendJoin(string.Empty, sockets.Zip(options).Select(p => $"\n{p.First.Local.Port} -> {p.First.Remote.Port}: {p.Second}")).ToString());
                var expected = new KernelSockets.SocketOptions(true, (int)Idle.TotalSeconds, (int)Interval.TotalSeconds, Count, (int)(Idle + (Interval * Count)).TotalMilliseconds);
                Assert.All(sockets.Zip(options), pair =>
                {
                    var (s, o) = pair;
                    Assert.True(s.KeepAliveArmed, $"no keepalive timer on {s.Local} -> {s.Remote} (tr={s.Timer}){report}");
                    Assert.InRange(s.TimerExpiresIn, TimeSpan.Zero, Idle);
                    Assert.True(expected == o, $"{s.Local} -> {s.Remote}: {o} (expected {expected})");
                });
                return sockets.Select(s => s.Local.Port).ToHashSet();
            }

            Assert.True(deadline.Elapsed < Settle, $"the multiplexer's connections did not settle within {Settle.TotalSeconds:0} s:{report}");
            await Task.Delay(100, Lab.Ct);
        }
    }

}
