using Resilient.Caching.IntegrationTests.FaultLab;
using Resilient.Caching.IntegrationTests.Infrastructure;
using Xunit;

namespace Resilient.Caching.IntegrationTests.Topologies;

/// <summary>
/// What callers see when a primary fails under load (4 async + 2 sync readers), for the stock provider and for ours
/// with the same settings (1 s operation timeout; ours with a 2 s window): exceptions, the longest call, the time from
/// the fault to the replica's promotion, and how many reads still hit during the outage, on the healthy shards of a
/// cluster and on the failed one. Recorded, not asserted; a measurement run by hand:
/// <c>FAULTLAB_BASELINE=1 dotnet test --project test/Resilient.Caching.IntegrationTests --filter-class "*FailoverBaselineTests"</c>.
/// </summary>
public sealed class FailoverBaselineTests
{
    private const string InstanceName = "app:";
    private const int KeysPerShard = 50;
    private static readonly TimeSpan OperationTimeout = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan Window = TimeSpan.FromSeconds(2);
    private static readonly TimeSpan Warm = TimeSpan.FromSeconds(2);
    private static readonly TimeSpan ObserveAfterRecovery = TimeSpan.FromSeconds(3);
    private static readonly TimeSpan PromotionBound = TimeSpan.FromSeconds(20);
    private static readonly TimeSpan HitAgainWithin = TimeSpan.FromSeconds(20);

    [Theory]
    [InlineData(Provider.Stock, "kill", true)]
    [InlineData(Provider.Resilient, "kill", true)]
    [InlineData(Provider.Stock, "kill", false)]
    [InlineData(Provider.Resilient, "kill", false)]
    [InlineData(Provider.Stock, "sigstop", false)]
    [InlineData(Provider.Resilient, "sigstop", false)]
    [InlineData(Provider.Stock, "planned", false)]
    [InlineData(Provider.Resilient, "planned", false)]
    public async Task Cluster_primary_fails_under_load(Provider provider, string fault, bool requireFullCoverage)
    {
        Lab.SkipUnlessMeasuring();
        await using var cluster = await RedisCluster.StartAsync(new RedisClusterOptions { RequireFullCoverage = requireFullCoverage }, Lab.Ct);
        var primaries = await cluster.GetPrimariesAsync();
        var failing = primaries[0];
        var replica = await cluster.GetReplicaOfAsync(failing);
        var keys = new List<(string Key, int Shard)>();
        for (var shard = 0; shard < primaries.Count; shard++)
        {
            keys.AddRange((await cluster.KeysOnAsync(primaries[shard], KeysPerShard, InstanceName, "reader")).Select(k => (k, shard)));
        }

        try
        {
            await MeasureAsync(
                $"cluster, {fault}, require-full-coverage {(requireFullCoverage ? "yes" : "no")}",
                provider,
                cluster.ConnectionString,
                keys,
                failing.Server,
                async () =>
                {
                    switch (fault)
                    {
                        case "kill":
                            failing.Kill();
                            break;
                        case "sigstop":
                            failing.Pause();
                            break;
                        default:
                            await RedisCluster.FailoverAsync(replica);
                            break;
                    }
                },
                async faultAt => await cluster.WaitForPromotionAsync(replica, faultAt, PromotionBound) is var p ? (p.After, p.SettledAfter) : default);
        }
        finally
        {
            if (failing.IsPaused)
            {
                failing.Resume();
            }
        }
    }

    [Theory]
    [InlineData(Provider.Stock, "kill")]
    [InlineData(Provider.Resilient, "kill")]
    [InlineData(Provider.Stock, "planned")]
    [InlineData(Provider.Resilient, "planned")]
    public async Task Sentinel_primary_fails_under_load(Provider provider, string fault)
    {
        Lab.SkipUnlessMeasuring();
        await using var sentinel = await RedisSentinel.StartAsync(cancellationToken: Lab.Ct);
        var primary = await sentinel.GetPrimaryAsync();
        var keys = Enumerable.Range(0, KeysPerShard).Select(i => ($"reader-{i}", 0)).ToList();

        await MeasureAsync(
            $"sentinel, {fault}",
            provider,
            sentinel.ConnectionString,
            keys,
            primary,
            async () =>
            {
                if (fault == "kill")
                {
                    primary.Kill();
                }
                else
                {
                    await sentinel.FailoverAsync();
                }
            },
            async faultAt => await sentinel.WaitForPromotionAsync(primary, faultAt, PromotionBound) is var p ? (p.After, p.SettledAfter) : default);
    }

    /// <param name="failing">The primary of shard 0, the one the fault hits.</param>
    /// <param name="promoted">Waits for the promotion; from the fault, when the replica said so and when all agreed.</param>
    private static async Task MeasureAsync(
        string scenario,
        Provider provider,
        string connectionString,
        IReadOnlyList<(string Key, int Shard)> keys,
        RedisServer failing,
        Func<Task> inject,
        Func<long, Task<(TimeSpan After, TimeSpan SettledAfter)>> promoted)
    {
        // Same timeouts for both: the stock provider takes them from the connection string.
        var configuration = provider == Provider.Stock
            ? $"{connectionString},syncTimeout={OperationTimeout.TotalMilliseconds},asyncTimeout={OperationTimeout.TotalMilliseconds}"
            : connectionString;
        using var cache = new TopologyCache(provider, configuration, InstanceName, o =>
        {
            o.OperationTimeout = OperationTimeout;
            o.UnavailableWindow = Window;
        });

        var figures = await FailoverScenario.MeasureAsync(
            new FailoverRun($"{provider} ({scenario})") { Refill = false, Warm = Warm, Observe = ObserveAfterRecovery, HitAgainWithin = HitAgainWithin, PromotionBound = PromotionBound },
            cache.Cache,
            cache.Ours,
            keys,
            () => failing.WaitForReplicasInSyncAsync(PromotionBound),
            inject,
            promoted);

        Assert.NotEmpty(figures.Samples);
    }
}
