using System.Diagnostics;
using System.Globalization;
using System.Net.Sockets;
using Resilient.Caching.IntegrationTests.FaultLab;
using Xunit;

namespace Resilient.Caching.IntegrationTests.Infrastructure;

// Self-tests of the topology fixtures: a cluster that did not really fail over, or keys that do not land where the
// fixture says, would let the topology tests pass for the wrong reason.

/// <summary>What the shared (healthy) cluster must be; nothing here changes its topology.</summary>
public sealed class RedisClusterFixtureSelfTests(ClusterFixture fixture) : IClassFixture<ClusterFixture>
{
    private RedisCluster Cluster => fixture.Cluster;

    [Fact]
    public async Task Forms_three_primaries_each_with_one_replica_covering_every_slot()
    {
        var topology = await Cluster.GetTopologyAsync();
        var primaries = await Cluster.GetPrimariesAsync();

        Assert.Equal(6, topology.Nodes.Count);
        Assert.Equal(3, primaries.Count);
        Assert.Equal(RedisCluster.SlotCount, topology.CoveredSlots);
        Assert.All(primaries, p => Assert.Single(topology.ReplicasOf(p.Id)));
        Assert.Equal(string.Join(',', primaries.Select(p => p.EndPoint)), Cluster.ConnectionString);
        foreach (var node in Cluster.Nodes)
        {
            var info = RespReply.Info(await node.Server.ExecuteAsync("CLUSTER", "INFO"));
            Assert.Equal("ok", info["cluster_state"]);
            Assert.Equal("6", info["cluster_known_nodes"]);
            Assert.Equal(["cluster-require-full-coverage", "yes"], RespReply.Array(await node.Server.ExecuteAsync("CONFIG", "GET", "cluster-require-full-coverage")));
            Assert.Equal(["cluster-node-timeout", "1000"], RespReply.Array(await node.Server.ExecuteAsync("CONFIG", "GET", "cluster-node-timeout")));
        }

        // Each node keeps its cluster-config-file in a directory of its own.
        var directories = new HashSet<string>();
        foreach (var node in Cluster.Nodes)
        {
            var directory = (string)RespReply.Array(await node.Server.ExecuteAsync("CONFIG", "GET", "dir"))[1]!;
            Assert.True(directories.Add(directory));
            Assert.True(File.Exists(Path.Combine(directory, "nodes.conf")));
        }
    }

    [Fact]
    public async Task Hash_slots_match_the_servers_and_keys_land_on_the_chosen_primary()
    {
        var node = Cluster.Nodes[0].Server;
        foreach (var key in new[] { "a", "key-1", "app:session-42", "{user1000}.following", "foo{}{bar}", "{}x", "ünïcode" })
        {
            var reply = await node.ExecuteAsync("CLUSTER", "KEYSLOT", key);
            Assert.Equal((long)RedisCluster.HashSlot(key), RespReply.Parse(reply));
        }

        var primaries = await Cluster.GetPrimariesAsync();
        foreach (var primary in primaries)
        {
            var keys = await Cluster.KeysOnAsync(primary, 5, instanceName: "app:");
            Assert.Equal(5, keys.Count);
            foreach (var key in keys)
            {
                Assert.Same(primary, await Cluster.GetPrimaryForKeyAsync("app:" + key));

                // The primary itself accepts the key; any other redirects to it.
                Assert.Equal(":1\r\n", await primary.Server.ExecuteAsync("HSET", "app:" + key, "data", "v"));
                var other = primaries.First(p => p != primary);
                var moved = await other.Server.ExecuteAsync("HGET", "app:" + key, "data");
                Assert.Equal($"-MOVED {RedisCluster.HashSlot("app:" + key)} {primary.EndPoint}\r\n", moved);
                Assert.Equal(":1\r\n", await primary.Server.ExecuteAsync("DEL", "app:" + key));
            }
        }
    }
}

/// <summary>Failovers, each on a cluster of its own.</summary>
public sealed class RedisClusterFailoverSelfTests
{
    private static readonly TimeSpan PromotionBound = TimeSpan.FromSeconds(15);

    [Fact]
    public async Task Killed_primary_is_replaced_by_its_replica_and_rejoins_as_its_replica_then_a_planned_failover_switches_back()
    {
        await using var cluster = await RedisCluster.StartAsync(cancellationToken: SelfTest.Token);
        var primary = (await cluster.GetPrimariesAsync())[0];
        var replica = await cluster.GetReplicaOfAsync(primary);
        var key = (await cluster.KeysOnAsync(primary, 1))[0];
        Assert.Equal("+OK\r\n", await primary.Server.ExecuteAsync("SET", key, "replicated"));
        await primary.Server.WaitForReplicasInSyncAsync(PromotionBound);

        var killedAt = Stopwatch.GetTimestamp();
        primary.Kill();
        var promotion = await cluster.WaitForPromotionAsync(replica, killedAt, PromotionBound);

        Lab.Report($"cluster kill: promoted after {promotion.After.TotalMilliseconds:0} ms, settled after {promotion.SettledAfter.TotalMilliseconds:0} ms");
        Assert.Same(replica, promotion.NewPrimary);
        Assert.InRange(promotion.After, cluster.Options.NodeTimeout, PromotionBound);
        Assert.True("$10\r\nreplicated\r\n" == await replica.Server.ExecuteAsync("GET", key), "the promoted replica lost the write: " + await replica.Server.ExecuteAsync("INFO", "replication"));
        Assert.Same(replica, await cluster.GetPrimaryForKeyAsync(key));
        await Assert.ThrowsAsync<SocketException>(() => primary.Server.ExecuteAsync("PING"));

        await primary.RestartAsync(SelfTest.Token);
        await cluster.WaitForHealthyAsync(PromotionBound);

        Assert.Equal(primary.Id, RespReply.Text(await primary.Server.ExecuteAsync("CLUSTER", "MYID")));
        Assert.Equal(replica.Id, (await cluster.GetTopologyAsync()).Nodes.Single(n => n.Id == primary.Id).PrimaryId);

        var failoverAt = Stopwatch.GetTimestamp();
        await RedisCluster.FailoverAsync(primary);
        var planned = await cluster.WaitForPromotionAsync(primary, failoverAt, PromotionBound);

        Lab.Report($"cluster planned failover: promoted after {planned.After.TotalMilliseconds:0} ms, settled after {planned.SettledAfter.TotalMilliseconds:0} ms");
        Assert.Same(primary, planned.NewPrimary);
        Assert.True("$10\r\nreplicated\r\n" == await primary.Server.ExecuteAsync("GET", key), "the planned failover lost the write: " + await primary.Server.ExecuteAsync("INFO", "replication"));
        Assert.Same(primary, await cluster.GetPrimaryForKeyAsync(key));
    }

    [Fact]
    public async Task Frozen_primary_is_replaced_and_comes_back_as_a_replica_when_thawed()
    {
        await using var cluster = await RedisCluster.StartAsync(cancellationToken: SelfTest.Token);
        var primary = (await cluster.GetPrimariesAsync())[1];
        var replica = await cluster.GetReplicaOfAsync(primary);

        var pausedAt = Stopwatch.GetTimestamp();
        primary.Pause();
        try
        {
            var promotion = await cluster.WaitForPromotionAsync(replica, pausedAt, PromotionBound);
            Assert.Same(replica, promotion.NewPrimary);
        }
        finally
        {
            primary.Resume();
        }

        await cluster.WaitForHealthyAsync(PromotionBound);
        Assert.Equal(replica.Id, (await cluster.GetTopologyAsync()).Nodes.Single(n => n.Id == primary.Id).PrimaryId);
    }

}

/// <summary>What <c>cluster-require-full-coverage</c> changes, on clusters of their own (a class apart, so it runs beside the failovers).</summary>
public sealed class RedisClusterCoverageSelfTests
{
    private static readonly TimeSpan PromotionBound = TimeSpan.FromSeconds(15);

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Full_coverage_setting_decides_whether_healthy_shards_serve_while_a_primary_is_down(bool requireFullCoverage)
    {
        await using var cluster = await RedisCluster.StartAsync(new RedisClusterOptions { RequireFullCoverage = requireFullCoverage }, SelfTest.Token);
        var primaries = await cluster.GetPrimariesAsync();
        var (dead, healthy) = (primaries[0], primaries[1]);
        var replica = await cluster.GetReplicaOfAsync(dead);
        var healthyKey = (await cluster.KeysOnAsync(healthy, 1))[0];
        var deadKey = (await cluster.KeysOnAsync(dead, 1))[0];
        var pids = cluster.Nodes.Select(n => n.Server.ProcessId!.Value).ToList();

        // No automatic failover, so the outage lasts until the test ends it.
        Assert.Equal("+OK\r\n", await replica.Server.ExecuteAsync("CONFIG", "SET", "cluster-replica-no-failover", "yes"));
        dead.Kill();
        Assert.True(
            await Lab.EventuallyAsync(async () => RespReply.Info(await healthy.Server.ExecuteAsync("CLUSTER", "INFO"))["cluster_slots_fail"] != "0", PromotionBound),
            "the healthy primary never marked the dead one failing");

        var healthyReply = await healthy.Server.ExecuteAsync("SET", healthyKey, "v");
        var deadSlotReply = await healthy.Server.ExecuteAsync("GET", deadKey);
        if (requireFullCoverage)
        {
            Assert.StartsWith("-CLUSTERDOWN", healthyReply, StringComparison.Ordinal);
            Assert.StartsWith("-CLUSTERDOWN", deadSlotReply, StringComparison.Ordinal);
        }
        else
        {
            // The healthy shard serves; the dead one's slots still point at it (a client then fails to connect).
            Assert.Equal("+OK\r\n", healthyReply);
            Assert.Equal($"-MOVED {RedisCluster.HashSlot(deadKey)} {dead.EndPoint}\r\n", deadSlotReply);
        }

        await RedisCluster.FailoverAsync(replica, "FORCE");
        await cluster.WaitForPromotionAsync(replica, Stopwatch.GetTimestamp(), PromotionBound);
        Assert.Equal("+OK\r\n", await healthy.Server.ExecuteAsync("SET", healthyKey, "v"));

        // Dispose kills every node by its pid.
        await cluster.DisposeAsync();
        Assert.All(pids, pid => Assert.False(Shell.IsProcessAlive(pid), $"redis-server {pid} survived dispose"));
    }
}

/// <summary>Sentinel deployments, each of its own.</summary>
public sealed class RedisSentinelFixtureSelfTests
{
    private static readonly TimeSpan PromotionBound = TimeSpan.FromSeconds(20);

    [Fact]
    public async Task Forms_with_three_sentinels_agreeing_on_the_primary_and_its_synced_replica()
    {
        await using var sentinel = await RedisSentinel.StartAsync(cancellationToken: SelfTest.Token);

        var primary = await sentinel.GetPrimaryAsync();
        Assert.Same(sentinel.DataNodes[0], primary);
        Assert.Equal(
            string.Join(',', sentinel.Sentinels.Select(s => $"127.0.0.1:{s.Port.ToString(CultureInfo.InvariantCulture)}")) + ",serviceName=rctest",
            sentinel.ConnectionString);
        foreach (var node in sentinel.Sentinels)
        {
            var master = RespReply.Pairs(RespReply.Parse(await node.ExecuteAsync("SENTINEL", "MASTER", "rctest")));
            Assert.Equal(primary.Port.ToString(CultureInfo.InvariantCulture), master["port"]);
            Assert.Equal("1", master["num-slaves"]);
            Assert.Equal("2", master["num-other-sentinels"]);
            Assert.Equal("1000", master["down-after-milliseconds"]);
        }

        Assert.Equal("+OK\r\n", await primary.ExecuteAsync("SET", "k", "v"));
        await primary.WaitForReplicasInSyncAsync(PromotionBound);
        Assert.Equal("$1\r\nv\r\n", await sentinel.DataNodes[1].ExecuteAsync("GET", "k"));
    }

    [Fact]
    public async Task Killed_primary_is_replaced_by_the_replica()
    {
        await using var sentinel = await RedisSentinel.StartAsync(cancellationToken: SelfTest.Token);
        var primary = await sentinel.GetPrimaryAsync();

        var killedAt = Stopwatch.GetTimestamp();
        primary.Kill();
        var promotion = await sentinel.WaitForPromotionAsync(primary, killedAt, PromotionBound);

        Lab.Report($"sentinel kill: promoted after {promotion.After.TotalMilliseconds:0} ms, settled after {promotion.SettledAfter.TotalMilliseconds:0} ms");
        Assert.Same(sentinel.DataNodes[1], promotion.NewPrimary);
        Assert.InRange(promotion.After, TimeSpan.FromSeconds(1), PromotionBound);
        Assert.Same(sentinel.DataNodes[1], await sentinel.GetPrimaryAsync());
        Assert.Equal("+OK\r\n", await promotion.NewPrimary.ExecuteAsync("SET", "k", "v")); // Writable: a primary.
    }

    [Fact]
    public async Task Planned_failover_switches_to_the_replica()
    {
        await using var sentinel = await RedisSentinel.StartAsync(cancellationToken: SelfTest.Token);
        var primary = await sentinel.GetPrimaryAsync();
        Assert.Equal("+OK\r\n", await primary.ExecuteAsync("SET", "k", "v"));
        await primary.WaitForReplicasInSyncAsync(PromotionBound); // Sentinel promotes without waiting for it.

        var failoverAt = Stopwatch.GetTimestamp();
        await sentinel.FailoverAsync();
        var promotion = await sentinel.WaitForPromotionAsync(primary, failoverAt, PromotionBound);

        Lab.Report($"sentinel planned failover: promoted after {promotion.After.TotalMilliseconds:0} ms, settled after {promotion.SettledAfter.TotalMilliseconds:0} ms");
        Assert.Same(sentinel.DataNodes[1], promotion.NewPrimary);
        Assert.Equal("$1\r\nv\r\n", await promotion.NewPrimary.ExecuteAsync("GET", "k"));
    }

    [Fact]
    public async Task Frozen_primary_is_replaced_by_the_replica()
    {
        await using var sentinel = await RedisSentinel.StartAsync(cancellationToken: SelfTest.Token);
        var primary = await sentinel.GetPrimaryAsync();

        var pausedAt = Stopwatch.GetTimestamp();
        primary.Pause();
        try
        {
            var promotion = await sentinel.WaitForPromotionAsync(primary, pausedAt, PromotionBound);

            Lab.Report($"sentinel SIGSTOP: promoted after {promotion.After.TotalMilliseconds:0} ms, settled after {promotion.SettledAfter.TotalMilliseconds:0} ms");
            Assert.Same(sentinel.DataNodes[1], promotion.NewPrimary);
            Assert.InRange(promotion.After, TimeSpan.FromSeconds(1), PromotionBound);
        }
        finally
        {
            primary.Resume();
        }
    }
}
