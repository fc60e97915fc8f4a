using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using Microsoft.Extensions.Caching.Distributed;
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
    private static readonly TimeSpan Limit = TimeSpan.FromSeconds(40);

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
        foreach (var (key, _) in keys)
        {
            await cache.Cache.SetAsync(key, Encoding.UTF8.GetBytes(key), new DistributedCacheEntryOptions(), Lab.Ct);
        }

        // Replicated before the fault, so the promoted replica holds every key of its shard.
        await failing.WaitForReplicasInSyncAsync(PromotionBound);

        await using var readers = Readers.Start(cache.Cache, keys, asyncReaders: 4, syncReaders: 2, Limit);
        await Task.Delay(Warm, Lab.Ct);

        var faultAt = Stopwatch.GetTimestamp();
        var faultOn = readers.Now;
        await inject();
        var (after, settledAfter) = await promoted(faultAt);

        // Until the failed shard's keys hit again (or the limit), then a little longer.
        var recovered = await readers.WaitForHitAsync(shard: 0, after: faultOn + settledAfter, Limit - readers.Now);
        await Task.Delay(ObserveAfterRecovery, Lab.Ct);
        await readers.StopAsync();

        Lab.Report(Describe($"{provider} ({scenario})", readers.Samples, faultOn, after, settledAfter, recovered));
        foreach (var first in readers.Samples.Where(s => s.Exception is not null).GroupBy(s => s.Error).Select(g => g.First()))
        {
            Lab.Report($"first {first.Error} ({(first.At - faultOn).TotalMilliseconds:0} ms after the fault, {first.Elapsed.TotalMilliseconds:0} ms): {first.Exception}");
        }

        if (cache.Ours is { } ours)
        {
            Lab.Report($"windows opened {ours.LogCount(Log.IdWindowOpened)}, closed {ours.LogCount(Log.IdWindowClosed)}, probes failed {ours.LogCount(Log.IdProbeFailed)}; last log lines:\n"
                + string.Join('\n', ours.DescribeLogs().Split('\n').TakeLast(8)));
        }

        Assert.NotEmpty(readers.Samples);
    }

    private static string Describe(string title, IReadOnlyList<Read> samples, TimeSpan faultOn, TimeSpan promotedAfter, TimeSpan settledAfter, Read? recovered)
    {
        var outageEnd = faultOn + settledAfter;
        var before = samples.Where(s => s.At < faultOn).ToList();
        var outage = samples.Where(s => s.At >= faultOn && s.At < outageEnd).ToList();
        var after = samples.Where(s => s.At >= faultOn).ToList();
        var errors = after.Where(s => s.Error is not null).ToList();
        var healthyDuringOutage = outage.Where(s => s.Shard != 0).ToList();
        var healthyBefore = before.Where(s => s.Shard != 0).ToList();

        static string Ratio(IReadOnlyCollection<Read> reads) =>
            reads.Count == 0 ? "n/a" : $"{100.0 * reads.Count(r => r.Hit) / reads.Count:0.0} % of {reads.Count}";

        static string PerSecond(IReadOnlyCollection<Read> reads, TimeSpan span) =>
            span <= TimeSpan.Zero ? "n/a" : (reads.Count / span.TotalSeconds).ToString("0", CultureInfo.InvariantCulture);

        static double MaxOf(List<Read> reads, bool sync) =>
            reads.Where(r => r.Sync == sync).Select(r => r.Elapsed.TotalMilliseconds).DefaultIfEmpty().Max();

        var text = new StringBuilder()
            .Append(CultureInfo.InvariantCulture, $"{title}: promoted {promotedAfter.TotalMilliseconds:0} ms after the fault, settled {settledAfter.TotalMilliseconds:0} ms; ");
        if (healthyBefore.Count > 0)
        {
            text.Append(CultureInfo.InvariantCulture, $"healthy shards hit {Ratio(healthyBefore)} before, {Ratio(healthyDuringOutage)} during the outage ")
                .Append(CultureInfo.InvariantCulture, $"({PerSecond(healthyBefore, faultOn)}/s before, {PerSecond(healthyDuringOutage, settledAfter)}/s during); ");
        }

        return text
            .Append(CultureInfo.InvariantCulture, $"failed shard hit {Ratio(outage.Where(s => s.Shard == 0).ToList())} during the outage, ")
            .Append(recovered is null ? "no hit again" : $"hit again {(recovered.At - faultOn).TotalMilliseconds:0} ms after the fault").Append("; ")
            .Append(CultureInfo.InvariantCulture, $"from the fault on: {after.Count} calls, {errors.Count} threw")
            .Append(errors.Count == 0 ? string.Empty : $" ({string.Join(", ", errors.GroupBy(e => e.Error!).Select(g => $"{g.Count()}× {g.Key}"))})")
            .Append(CultureInfo.InvariantCulture, $", slowest {(after.Count == 0 ? 0 : after.Max(s => s.Elapsed).TotalMilliseconds):0} ms")
            .Append(CultureInfo.InvariantCulture, $" (sync {MaxOf(after, sync: true):0} ms, async {MaxOf(after, sync: false):0} ms)")
            .ToString();
    }

    /// <summary>One read: when it started (since the readers began), how long it took, which shard, what came back.</summary>
    private sealed record Read(TimeSpan At, TimeSpan Elapsed, int Shard, bool Sync, bool Hit, Exception? Exception)
    {
        public string? Error => Exception?.GetType().Name;
    }

    /// <summary>
    /// Readers of fixed keys spread over the shards, each going round the keys from its own offset, recording every
    /// call, with a short pause between calls as an application's requests have; exceptions are recorded, not thrown,
    /// so the same driver measures the stock provider. Bounded in time and in count (20 000 reads each).
    /// </summary>
    private sealed class Readers : IAsyncDisposable
    {
        private const int MaxReadsEach = 20_000;
        private static readonly TimeSpan Pause = TimeSpan.FromMilliseconds(5);

        private readonly IDistributedCache _cache;
        private readonly IReadOnlyList<(string Key, int Shard)> _keys;
        private readonly ConcurrentQueue<Read> _samples = new();
        private readonly Stopwatch _clock = Stopwatch.StartNew();
        private readonly CancellationTokenSource _stop;
        private readonly Task[] _workers;

        private Readers(IDistributedCache cache, IReadOnlyList<(string, int)> keys, int asyncReaders, int syncReaders, TimeSpan limit)
        {
            _cache = cache;
            _keys = keys;
            _stop = CancellationTokenSource.CreateLinkedTokenSource(Lab.Ct);
            _stop.CancelAfter(limit);
            _workers =
            [
                .. Enumerable.Range(0, asyncReaders).Select(w => Task.Run(() => ReadAsync(w))),
                .. Enumerable.Range(asyncReaders, syncReaders).Select(w =>
                    Task.Factory.StartNew(() => Read(w), CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default)),
            ];
        }

        public TimeSpan Now => _clock.Elapsed;

        public IReadOnlyList<Read> Samples => [.. _samples.OrderBy(s => s.At)];

        public static Readers Start(IDistributedCache cache, IReadOnlyList<(string, int)> keys, int asyncReaders, int syncReaders, TimeSpan limit) =>
            new(cache, keys, asyncReaders, syncReaders, limit);

        /// <summary>The first hit on <paramref name="shard"/> of a read started at or after <paramref name="after"/>, or null on time-out.</summary>
        public async Task<Read?> WaitForHitAsync(int shard, TimeSpan after, TimeSpan timeout)
        {
            Read? found = null;
            await Lab.EventuallyAsync(() => (found = _samples.FirstOrDefault(s => s.Shard == shard && s.Hit && s.At >= after)) is not null, timeout);
            return found;
        }

        public async Task StopAsync()
        {
            await _stop.CancelAsync();
            await Task.WhenAll(_workers).WaitAsync(TimeSpan.FromSeconds(30));
        }

        public async ValueTask DisposeAsync()
        {
            await StopAsync();
            _stop.Dispose();
        }

        private async Task ReadAsync(int worker)
        {
            for (var i = 0; i < MaxReadsEach && !_stop.IsCancellationRequested; i++)
            {
                var (key, shard) = _keys[(worker * 7 + i) % _keys.Count];
                var at = _clock.Elapsed;
                try
                {
                    var value = await _cache.GetAsync(key, CancellationToken.None);
                    _samples.Enqueue(new Read(at, _clock.Elapsed - at, shard, false, value is not null, null));
                }
                catch (Exception exception) when (exception is not OperationCanceledException)
                {
                    _samples.Enqueue(new Read(at, _clock.Elapsed - at, shard, false, false, exception));
                }

                await Task.Delay(Pause, CancellationToken.None);
            }
        }

        private void Read(int worker)
        {
            for (var i = 0; i < MaxReadsEach && !_stop.IsCancellationRequested; i++)
            {
                var (key, shard) = _keys[(worker * 7 + i) % _keys.Count];
                var at = _clock.Elapsed;
                try
                {
                    var value = _cache.Get(key);
                    _samples.Enqueue(new Read(at, _clock.Elapsed - at, shard, true, value is not null, null));
                }
                catch (Exception exception) when (exception is not OperationCanceledException)
                {
                    _samples.Enqueue(new Read(at, _clock.Elapsed - at, shard, true, false, exception));
                }

                Thread.Sleep(Pause);
            }
        }
    }
}
