using System.Diagnostics;
using Resilient.Caching.IntegrationTests.Infrastructure;

namespace Resilient.Caching.OutageReport;

/// <summary>
/// The cluster timeline for one provider: a fresh 3-primary, 3-replica cluster (cluster-require-full-coverage no),
/// the session keys spread evenly over the three shards, the first primary SIGKILLed, its replica's promotion
/// awaited and marked, the killed node started again and its rejoin as a replica awaited and marked.
/// </summary>
internal static class ClusterRun
{
    public const string Promoted = "replica promoted";
    public const string Rejoined = "rejoined as replica";

    private static readonly TimeSpan TopologyTimeout = TimeSpan.FromSeconds(30);

    public static async Task<ProviderResult> RunAsync(
        string provider, ProviderSettings settings, Timeline timeline, WorkloadSettings workload, Action<string> log)
    {
        await using var cluster = await RedisCluster.StartAsync(new RedisClusterOptions { RequireFullCoverage = false });
        var primaries = await cluster.GetPrimariesAsync();
        var victim = primaries[0];
        var replica = await cluster.GetReplicaOfAsync(victim);
        var keys = await SpreadKeysAsync(cluster, primaries, victim, workload.Callers);
        var instance = Providers.Create(provider, cluster.ConnectionString, settings);
        using (instance.Cache)
        {
            log($"  {instance.Name} ({instance.Settings}) on cluster {cluster.ConnectionString}; primary {victim} will be killed, replica {replica}");

            // Connected to every shard before t = 0, as a running application would be (keys go round-robin over the shards).
            foreach (var key in keys.Take(primaries.Count))
            {
                await Warm.UpAsync(instance, key.Key, workload.ValueBytes);
            }

            var (samples, abandoned, marks) = await LoadRun.RunAsync(
                instance.Cache, keys, timeline, workload, clock => InjectAsync(cluster, victim, replica, timeline, clock, log), log);
            return new ProviderResult(provider, instance.Name, instance.Settings, samples, abandoned, timeline, marks, instance.Notes());
        }
    }

    /// <summary>
    /// One key per caller, round-robin over the primaries: <c>session:{N}</c>, the hash tag making the slot that of N
    /// whatever prefix a provider adds in front (FusionCache adds its wire-format version).
    /// </summary>
    private static async Task<IReadOnlyList<CallerKey>> SpreadKeysAsync(RedisCluster cluster, IReadOnlyList<ClusterNode> primaries, ClusterNode victim, int callers)
    {
        var topology = await cluster.GetTopologyAsync();
        var slots = primaries.Select(p => topology.Nodes.Single(n => n.Id == p.Id).Slots).ToList();
        var keys = new List<CallerKey>(callers);
        var next = 0;
        for (var i = 0; i < callers; i++)
        {
            var shard = i % primaries.Count;
            while (!slots[shard].Any(r => r.Contains(RedisCluster.HashSlot(next.ToString(System.Globalization.CultureInfo.InvariantCulture)))))
            {
                next++;
            }

            keys.Add(new CallerKey($"session:{{{next}}}", primaries[shard] == victim ? (byte)1 : (byte)0));
            next++;
        }

        return keys;
    }

    private static async Task<IReadOnlyList<Mark>> InjectAsync(
        RedisCluster cluster, ClusterNode victim, ClusterNode replica, Timeline timeline, Stopwatch clock, Action<string> log)
    {
        List<Mark> marks = [];
        await DelayUntilAsync(clock, timeline.Start(PhaseKind.PrimaryKilled));
        victim.Kill();
        var faultAt = Stopwatch.GetTimestamp();
        var killedAt = clock.Elapsed.TotalSeconds;
        log($"    t={killedAt,5:0.0} s  primary {victim} killed");

        var promotion = await cluster.WaitForPromotionAsync(replica, faultAt, TopologyTimeout);
        marks.Add(new Mark(killedAt + promotion.After.TotalSeconds, Promoted));
        log($"    t={killedAt + promotion.After.TotalSeconds,5:0.0} s  {replica} promoted ({promotion.After.TotalSeconds:0.0} s after the kill; every node agreed after {promotion.SettledAfter.TotalSeconds:0.0} s)");

        await DelayUntilAsync(clock, timeline.Start(PhaseKind.NodeRestarted));
        await victim.RestartAsync();
        var restartedAt = clock.Elapsed.TotalSeconds;
        log($"    t={restartedAt,5:0.0} s  {victim} restarted");

        await cluster.WaitForHealthyAsync(TopologyTimeout);
        var topology = await cluster.GetTopologyAsync();
        var role = topology.Nodes.Single(n => n.Id == victim.Id);
        if (role.IsPrimary || role.PrimaryId != replica.Id)
        {
            throw new InvalidOperationException($"{victim} did not rejoin as the replica of {replica}.");
        }

        var rejoinedAt = clock.Elapsed.TotalSeconds;
        marks.Add(new Mark(rejoinedAt, Rejoined));
        log($"    t={rejoinedAt,5:0.0} s  {victim} rejoined as the replica of {replica} ({rejoinedAt - restartedAt:0.0} s after the restart)");
        return marks;
    }

    private static async Task DelayUntilAsync(Stopwatch clock, double seconds)
    {
        var wait = TimeSpan.FromSeconds(seconds) - clock.Elapsed;
        if (wait > TimeSpan.Zero)
        {
            await Task.Delay(wait);
        }
    }
}

/// <summary>Warming a provider before t = 0: a write, then reads until it comes back (background writes may lag).</summary>
internal static class Warm
{
    public static async Task UpAsync(ProviderInstance instance, string key, int valueBytes)
    {
        await instance.Cache.WriteAsync(key, LoadRun.SessionValue(valueBytes));
        var deadline = Stopwatch.StartNew();
        while (!await instance.Cache.ReadAsync(key))
        {
            if (deadline.Elapsed > TimeSpan.FromSeconds(5))
            {
                throw new InvalidOperationException($"{instance.Name}: Redis is not reachable (key {key} never read back).");
            }

            await Task.Delay(20);
        }
    }
}
