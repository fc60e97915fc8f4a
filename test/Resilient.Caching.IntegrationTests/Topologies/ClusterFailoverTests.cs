using Resilient.Caching.IntegrationTests.FaultLab;
using Resilient.Caching.IntegrationTests.Infrastructure;
using Xunit;

namespace Resilient.Caching.IntegrationTests.Topologies;

/// <summary>
/// One primary of a 3 + 3 Redis Cluster fails under load (4 async + 2 sync readers, keys on every shard, replicated
/// before the fault), with ours only: no caller sees an exception, no call outlasts the operation timeout, the healthy
/// shards keep hitting, the failed shard's keys are read from its replica until the promotion and from the promoted
/// replica at the latest one window after it; a planned failover opens no window. Each test forms its own cluster
/// (the topology changes) and reports its figures.
/// </summary>
public sealed class ClusterFailoverTests
{
    private const string InstanceName = "app:";
    private const int KeysPerShard = 50;
    private const double HealthyHitPercent = 95;
    private const double ReplicaHitPercent = 90;
    private static readonly TimeSpan OperationTimeout = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan Window = TimeSpan.FromSeconds(2);
    private static readonly TimeSpan PromotionBound = TimeSpan.FromSeconds(20);

    public enum Fault
    {
        /// <summary>SIGKILL: connections to the primary are refused.</summary>
        Kill,

        /// <summary>SIGSTOP: the primary accepts connections and answers nothing.</summary>
        Pause,
    }

    [Theory]
    [InlineData(Fault.Kill)]
    [InlineData(Fault.Pause)]
    public async Task Primary_fails_healthy_shards_keep_hitting_and_the_failed_shard_is_read_from_its_replica(Fault fault)
    {
        await using var cluster = await RedisCluster.StartAsync(new RedisClusterOptions { RequireFullCoverage = false }, Lab.Ct);
        var failing = (await cluster.GetPrimariesAsync())[0];
        try
        {
            var (figures, _) = await MeasureAsync(
                cluster,
                $"cluster, primary {fault}, require-full-coverage no",
                Short,
                _ =>
                {
                    if (fault == Fault.Kill)
                    {
                        failing.Kill();
                    }
                    else
                    {
                        failing.Pause();
                    }

                    return Task.CompletedTask;
                },
                waitForShards: 1,
                hitAgainWithin: Expectations.HitAgainWithin(Window, OperationTimeout));

            var expect = new Expectations();
            expect.NoExceptionAndBoundedCalls(figures, OperationTimeout);
            expect.HealthyShardsKeepHitting(figures, HealthyHitPercent);
            expect.That(figures.FailedDuring.Percent >= ReplicaHitPercent, $"the failed shard hit {figures.FailedDuring} between the fault and the promotion, read from its replica (at least {ReplicaHitPercent} %)");
            expect.UsedAgain(figures, shards: 1, Window, OperationTimeout);
            expect.StoredDataUsedAgain(figures, Window, OperationTimeout);
            expect.Verify();
        }
        finally
        {
            if (failing.IsPaused)
            {
                failing.Resume();
            }
        }
    }

    [Fact]
    public async Task Planned_failover_opens_no_window_and_reads_keep_hitting()
    {
        await using var cluster = await RedisCluster.StartAsync(new RedisClusterOptions { RequireFullCoverage = false }, Lab.Ct);

        // Writes all through the switch: a write the old primary refuses (READONLY) or redirects (MOVED) is a switch, not an outage.
        var expect = new Expectations();
        var (figures, ours) = await MeasureAsync(
            cluster,
            "cluster, CLUSTER FAILOVER",
            Short,
            replica => RedisCluster.FailoverAsync(replica),
            waitForShards: 0,
            hitAgainWithin: TimeSpan.Zero,
            checkWrites: expect);

        expect.NoExceptionAndBoundedCalls(figures, OperationTimeout);
        expect.That(ours.LogCount(Log.IdWindowOpened) == 0, $"windows opened: {ours.LogCount(Log.IdWindowOpened)} (none expected)");
        var fromFault = HitRatio.Of(figures.FromFault);
        expect.That(fromFault.Percent >= HealthyHitPercent, $"reads hit {fromFault} from the failover on (at least {HealthyHitPercent} %)");
        expect.Verify(ours.DescribeLogs);
    }

    [Fact]
    public async Task Full_coverage_required_primary_killed_clusterdown_is_ridden_out_and_every_shard_hits_again()
    {
        // Redis' default: every node answers CLUSTERDOWN for every key until the replica takes over.
        await using var cluster = await RedisCluster.StartAsync(new RedisClusterOptions { RequireFullCoverage = true }, Lab.Ct);
        var failing = (await cluster.GetPrimariesAsync())[0];
        var (figures, _) = await MeasureAsync(
            cluster,
            "cluster, primary killed, require-full-coverage yes",
            Short,
            _ =>
            {
                failing.Kill();
                return Task.CompletedTask;
            },
            waitForShards: 3,
            hitAgainWithin: Expectations.HitAgainWithin(Window, OperationTimeout));

        var expect = new Expectations();
        expect.NoExceptionAndBoundedCalls(figures, OperationTimeout);
        expect.UsedAgain(figures, shards: 3, Window, OperationTimeout);
        expect.Verify();
    }

    [Fact]
    public async Task Default_timeouts_primary_killed_healthy_shards_keep_hitting_and_the_failed_shard_is_used_again()
    {
        var defaults = new ResilientRedisCacheOptions();
        await using var cluster = await RedisCluster.StartAsync(new RedisClusterOptions { RequireFullCoverage = false }, Lab.Ct);
        var failing = (await cluster.GetPrimariesAsync())[0];
        var (figures, _) = await MeasureAsync(
            cluster,
            $"cluster, primary killed, require-full-coverage no, default timeouts ({defaults.OperationTimeout.TotalSeconds:0} s, window {defaults.UnavailableWindow.TotalSeconds:0} s)",
            o =>
            {
                o.OperationTimeout = defaults.OperationTimeout;
                o.ConnectTimeout = defaults.ConnectTimeout;
                o.UnavailableWindow = defaults.UnavailableWindow;
                o.TcpKeepAlive.Idle = defaults.TcpKeepAlive.Idle;
                o.TcpKeepAlive.Interval = defaults.TcpKeepAlive.Interval;
                o.TcpKeepAlive.Count = defaults.TcpKeepAlive.Count;
            },
            _ =>
            {
                failing.Kill();
                return Task.CompletedTask;
            },
            waitForShards: 1,
            hitAgainWithin: Expectations.HitAgainWithin(defaults.UnavailableWindow, defaults.OperationTimeout));

        var expect = new Expectations();
        expect.NoExceptionAndBoundedCalls(figures, defaults.OperationTimeout);
        expect.HealthyShardsKeepHitting(figures, HealthyHitPercent);
        expect.UsedAgain(figures, shards: 1, defaults.UnavailableWindow, defaults.OperationTimeout);
        expect.StoredDataUsedAgain(figures, defaults.UnavailableWindow, defaults.OperationTimeout);
        expect.Verify();
    }

    private static void Short(ResilientRedisCacheOptions options)
    {
        options.OperationTimeout = OperationTimeout;
        options.UnavailableWindow = Window;
    }

    /// <summary>
    /// Keys on every shard (shard 0's primary is the one that fails), the cache with <paramref name="setup"/>, then
    /// the failover under load; <paramref name="inject"/> is given shard 0's replica (the one promoted).
    /// </summary>
    private static async Task<(FailoverFigures Figures, LabCache Ours)> MeasureAsync(
        RedisCluster cluster,
        string title,
        Action<ResilientRedisCacheOptions> setup,
        Func<ClusterNode, Task> inject,
        int waitForShards,
        TimeSpan hitAgainWithin,
        Expectations? checkWrites = null)
    {
        var primaries = await cluster.GetPrimariesAsync();
        var failing = primaries[0];
        var replica = await cluster.GetReplicaOfAsync(failing);
        List<(string Key, int Shard)> keys = [];
        for (var shard = 0; shard < primaries.Count; shard++)
        {
            keys.AddRange((await cluster.KeysOnAsync(primaries[shard], KeysPerShard, InstanceName, "reader")).Select(k => (k, shard)));
        }

        using var cache = new TopologyCache(Provider.Resilient, cluster.ConnectionString, InstanceName, setup);
        var ours = cache.Ours!;
        var writes = checkWrites is null ? null : new Writes(cache.Cache);
        var figures = await FailoverScenario.MeasureAsync(
            new FailoverRun($"Resilient ({title})") { WaitForShards = waitForShards, HitAgainWithin = hitAgainWithin, PromotionBound = PromotionBound },
            cache.Cache,
            ours,
            keys,
            () => failing.Server.WaitForReplicasInSyncAsync(PromotionBound),
            () => inject(replica),
            async faultAt => await cluster.WaitForPromotionAsync(replica, faultAt, PromotionBound) is var p ? (p.After, p.SettledAfter) : default,
            writes is null ? null : writes.RunAsync);
        if (writes is not null)
        {
            writes.Check(checkWrites!, cache.Cache);
        }

        return (figures, ours);
    }
}
