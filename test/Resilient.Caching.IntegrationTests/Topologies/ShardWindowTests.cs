using System.Diagnostics;
using System.Diagnostics.Metrics;
using Microsoft.Extensions.Caching.Distributed;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;
using Resilient.Caching.Diagnostics;
using Resilient.Caching.IntegrationTests.FaultLab;
using Resilient.Caching.IntegrationTests.Infrastructure;
using Xunit;

namespace Resilient.Caching.IntegrationTests.Topologies;

/// <summary>
/// One shard of a Redis Cluster out for good (its primary and its replica killed, <c>cluster-require-full-coverage
/// no</c>): only its keys skip Redis, and every place a user looks says which shard — the availability, the event,
/// the health check, the metrics, the log line. Then it comes back, and is used again.
/// </summary>
public sealed class ShardWindowTests
{
    private const string InstanceName = "app:";
    private static readonly TimeSpan OperationTimeout = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan Window = TimeSpan.FromSeconds(2);

    [Fact]
    public async Task One_shard_out_only_its_keys_skip_Redis_and_everything_says_which()
    {
        await using var cluster = await RedisCluster.StartAsync(new RedisClusterOptions { RequireFullCoverage = false }, Lab.Ct);
        var primaries = await cluster.GetPrimariesAsync();
        var failing = primaries[0];
        var replica = await cluster.GetReplicaOfAsync(failing);
        var keys = new List<(string Key, int Shard)>();
        for (var shard = 0; shard < primaries.Count; shard++)
        {
            keys.AddRange((await cluster.KeysOnAsync(primaries[shard], 5, InstanceName, "shard")).Select(k => (k, shard)));
        }

        await using var lab = new LabCache(cluster.ConnectionString, o =>
        {
            o.InstanceName = InstanceName;
            o.OperationTimeout = OperationTimeout;
            o.ConnectTimeout = OperationTimeout;
            o.UnavailableWindow = Window;
        }, services: s => s.AddMetrics().AddHealthChecks().AddResilientStackExchangeRedisCache());
        using var transitions = new MetricCollector<long>(lab.Provider.GetRequiredService<IMeterFactory>(), ResilientCacheMetrics.MeterName, ResilientCacheMetrics.TransitionsName);
        using var availabilityGauge = new MetricCollector<int>(lab.Provider.GetRequiredService<IMeterFactory>(), ResilientCacheMetrics.MeterName, ResilientCacheMetrics.AvailabilityName);
        var opened = new List<CacheWindowOpenedEventArgs>();
        var closed = new List<CacheWindowClosedEventArgs>();
        lab.Availability.WindowOpened += (_, e) => { lock (opened) { opened.Add(e); } };
        lab.Availability.WindowClosed += (_, e) => { lock (closed) { closed.Add(e); } };
        foreach (var (key, _) in keys)
        {
            await lab.Cache.SetStringAsync(key, key, Lab.Ct);
        }

        // The layout is read when the connection is handed out and on every change of topology the client reports; a
        // loaded machine once ran the writes above before it was known (no shard at all).
        await Lab.UntilAsync("the cluster's layout known (three shards)", TimeSpan.FromSeconds(10), () => Task.FromResult(lab.Availability.Shards.Count == 3));
        Assert.All(lab.Availability.Shards, s => Assert.True(s.IsAvailable));
        Assert.Contains(lab.Availability.Shards, s => s.ServerAddress == failing.EndPoint);

        replica.Kill();
        failing.Kill();

        // Until the shard's window is open: reads of its keys fail once (or time out), then skip Redis. Open, not only
        // suspected: the shard is out from the lost connection on, and the probe that confirms it may take up to the
        // operation timeout, which on a loaded machine outlasts the rounds below.
        await Lab.UntilAsync("the failed shard's window opens", TimeSpan.FromSeconds(20), async () =>
        {
            foreach (var (key, _) in keys.Where(k => k.Shard == 0))
            {
                _ = await lab.Cache.GetAsync(key, Lab.Ct);
            }

            lock (opened)
            {
                return lab.Availability.Shards.Any(s => !s.IsAvailable) && opened.Any(e => !e.IsProbeFailure);
            }
        });

        var outShard = Assert.Single(lab.Availability.Shards, s => !s.IsAvailable);
        Assert.Equal(failing.EndPoint, outShard.ServerAddress);
        Assert.False(lab.Availability.IsAvailable);

        // Only that shard: the others' keys still hit, every time; its own keys are misses at once, without an exception.
        for (var round = 0; round < 20; round++)
        {
            foreach (var (key, shard) in keys)
            {
                var started = Stopwatch.GetTimestamp();
                var value = round % 2 == 0 ? lab.Cache.GetString(key) : await lab.Cache.GetStringAsync(key, Lab.Ct);
                if (shard == 0)
                {
                    Assert.True(Stopwatch.GetElapsedTime(started) < OperationTimeout + TimeSpan.FromSeconds(1), "bounded");
                }
                else
                {
                    Assert.True(key == value, $"{key} on a healthy shard missed\n{lab.DescribeLogs()}");
                }
            }
        }

        var health = Assert.Single((await lab.Provider.GetRequiredService<HealthCheckService>().CheckHealthAsync(Lab.Ct)).Entries).Value;
        Assert.Equal(HealthStatus.Degraded, health.Status);
        Assert.Contains(failing.EndPoint, health.Description);
        Assert.Equal([failing.EndPoint], (string[])health.Data["unavailable_shards"]);

        var opening = Assert.Single(opened.ToArray(), e => !e.IsProbeFailure);
        Assert.Equal(failing.EndPoint, opening.ServerAddress);
        Assert.Contains(transitions.GetMeasurementSnapshot(), m =>
            (string?)m.Tags[ResilientCacheMetrics.TransitionTag] == "opened" && (string?)m.Tags[ResilientCacheMetrics.ServerAddressTag] == failing.EndPoint);
        availabilityGauge.RecordObservableInstruments();
        Assert.Contains(availabilityGauge.GetMeasurementSnapshot(), m =>
            m.Value == 0 && m.Tags.TryGetValue(ResilientCacheMetrics.ServerAddressTag, out var address) && (string?)address == failing.EndPoint);
        Assert.Contains(lab.Logs.GetSnapshot(), r => r.Id.Id == Log.IdWindowOpened && r.Message.Contains(failing.EndPoint, StringComparison.Ordinal));

        // Back (empty): used again within a window or so of the cluster covering the slots again.
        await failing.RestartAsync(Lab.Ct);
        await replica.RestartAsync(Lab.Ct);
        await cluster.WaitForHealthyAsync(TimeSpan.FromSeconds(30));
        var (firstKey, _) = keys[0];
        await Lab.UntilAsync("the shard is used again", Window + TimeSpan.FromSeconds(15), async () =>
        {
            await lab.Cache.SetStringAsync(firstKey, "again", Lab.Ct);
            return await lab.Cache.GetStringAsync(firstKey, Lab.Ct) == "again";
        });

        Assert.True(lab.Availability.IsAvailable, lab.DescribeLogs());
        // The close is logged and raised a moment after callers see it, outside the window's lock.
        await lab.AssertLoggedAsync(r => r.Id.Id == Log.IdWindowClosed && r.Message.Contains(failing.EndPoint, StringComparison.Ordinal));
        Assert.Contains(closed.ToArray(), e => e.ServerAddress == failing.EndPoint);
    }
}
