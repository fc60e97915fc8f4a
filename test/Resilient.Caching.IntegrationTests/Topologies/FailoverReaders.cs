using System.Diagnostics;
using System.Globalization;
using System.Text;
using Microsoft.Extensions.Caching.Distributed;
using Resilient.Caching.IntegrationTests.FaultLab;
using Xunit;

namespace Resilient.Caching.IntegrationTests.Topologies;

/// <summary>
/// The load of a failover measurement: a <see cref="Traffic"/> of readers over fixed keys spread over the shards,
/// each going round the keys from its own offset, 5 ms apart, with no caller token. With <c>refill</c> a reader that
/// misses writes back <see cref="RefillOf"/> (cache-aside, as an application does), so a key deleted at recovery is
/// used again once writes land. Bounded in time and in count (20 000 reads each).
/// </summary>
internal static class FailoverReaders
{
    /// <summary>What a refill writes: told apart from the value stored before the fault (<see cref="Traffic.ValueOf"/>).</summary>
    public static byte[] RefillOf(string key) => Lab.Bytes("refill of " + key);

    /// <summary>A hit on a refill's value, not on the value stored before the fault.</summary>
    public static bool Refilled(Sample sample) => sample.Value is { } value && value.AsSpan().SequenceEqual(RefillOf(sample.Key));

    public static Traffic Start(IDistributedCache cache, IReadOnlyList<(string Key, int Shard)> keys, int asyncReaders, int syncReaders, TimeSpan limit, bool refill = false) =>
        Traffic.Start(cache, new TrafficOptions
        {
            AsyncWorkers = asyncReaders,
            SyncWorkers = syncReaders,
            Keys = keys,
            WriteBack = refill ? RefillOf : null,
            Pause = TimeSpan.FromMilliseconds(5),
            Limit = limit,
            CancellableCalls = false,
        });
}

/// <summary>Reads that hit, of all reads in a period.</summary>
internal readonly record struct HitRatio(int Hits, int Count)
{
    public static HitRatio Of(IEnumerable<Sample> calls)
    {
        var reads = calls.Where(c => !c.Write).ToList();
        return new HitRatio(reads.Count(r => r.Hit), reads.Count);
    }

    /// <summary>Share of hits in percent; 0 when there was no read (an assertion on it then fails, as it should).</summary>
    public double Percent => Count == 0 ? 0 : 100.0 * Hits / Count;

    public override string ToString() => Count == 0 ? "n/a (no read)" : string.Create(CultureInfo.InvariantCulture, $"{Percent:0.0} % of {Count}");
}

/// <summary>
/// What the <see cref="FailoverReaders"/> saw around one failover, shard 0 being the one whose primary failed: every time is
/// measured from the fault, "during the outage" is from the fault until the promotion settled (every node or
/// sentinel agreed).
/// </summary>
internal sealed class FailoverFigures
{
    private const int FailedShard = 0;

    public FailoverFigures(IReadOnlyList<Sample> samples, TimeSpan faultOn, TimeSpan promotedAfter, TimeSpan settledAfter)
    {
        Samples = samples;
        FaultOn = faultOn;
        PromotedAfter = promotedAfter;
        SettledAfter = settledAfter;
        var outageEnd = faultOn + settledAfter;
        var before = samples.Where(s => s.At < faultOn).ToList();
        var outage = samples.Where(s => s.At >= faultOn && s.At < outageEnd).ToList();
        FromFault = [.. samples.Where(s => s.At >= faultOn)];
        Errors = [.. FromFault.Where(s => s.Error is not null)];
        AllBefore = HitRatio.Of(before);
        HealthyBefore = HitRatio.Of(before.Where(s => s.Shard != FailedShard));
        HealthyDuring = HitRatio.Of(outage.Where(s => s.Shard != FailedShard));
        FailedDuring = HitRatio.Of(outage.Where(s => s.Shard == FailedShard));
        HealthyAfter = HitRatio.Of(samples.Where(s => s.At >= outageEnd && s.Shard != FailedShard));
        FailedAfter = HitRatio.Of(samples.Where(s => s.At >= outageEnd && s.Shard == FailedShard));
        Slowest = FromFault.Select(s => s.Elapsed).DefaultIfEmpty().Max();
        SlowestSync = FromFault.Where(s => s.Sync).Select(s => s.Elapsed).DefaultIfEmpty().Max();
        SlowestAsync = FromFault.Where(s => !s.Sync).Select(s => s.Elapsed).DefaultIfEmpty().Max();
    }

    public IReadOnlyList<Sample> Samples { get; }

    /// <summary>When the fault was injected, on the readers' clock.</summary>
    public TimeSpan FaultOn { get; }

    /// <summary>From the fault until the replica was the primary (it said so, or a sentinel named it).</summary>
    public TimeSpan PromotedAfter { get; }

    /// <summary>From the fault until every running node, or every sentinel, agreed.</summary>
    public TimeSpan SettledAfter { get; }

    /// <summary>Every call started at or after the fault.</summary>
    public IReadOnlyList<Sample> FromFault { get; }

    /// <summary>The calls started at or after the fault that threw.</summary>
    public IReadOnlyList<Sample> Errors { get; }

    /// <summary>Every read before the fault.</summary>
    public HitRatio AllBefore { get; }

    public HitRatio HealthyBefore { get; }

    /// <summary>Reads of the healthy shards' keys between the fault and the settled promotion.</summary>
    public HitRatio HealthyDuring { get; }

    /// <summary>Reads of the failed shard's keys between the fault and the settled promotion.</summary>
    public HitRatio FailedDuring { get; }

    /// <summary>Reads of the healthy shards' keys from the settled promotion to the end.</summary>
    public HitRatio HealthyAfter { get; }

    /// <summary>Reads of the failed shard's keys from the settled promotion to the end.</summary>
    public HitRatio FailedAfter { get; }

    public TimeSpan Slowest { get; }

    public TimeSpan SlowestSync { get; }

    public TimeSpan SlowestAsync { get; }

    /// <summary>
    /// From the fault to the start of the first read that hit a key of <paramref name="shard"/> once the promotion had
    /// settled (with <paramref name="stored"/>, only a hit on the value stored before the fault: the replicated data,
    /// not a refill); null if none did.
    /// </summary>
    public TimeSpan? FirstHitAfterPromotion(int shard = FailedShard, bool stored = false) =>
        Samples.FirstOrDefault(s => s.Shard == shard && s.Hit && (!stored || !FailoverReaders.Refilled(s)) && s.At >= FaultOn + SettledAfter) is { } hit ? hit.At - FaultOn : null;

    /// <summary>One line for the test output, with every figure the assertions use.</summary>
    public string Describe(string title, int shards)
    {
        static string PerSecond(HitRatio reads, TimeSpan span) =>
            span <= TimeSpan.Zero ? "n/a" : (reads.Count / span.TotalSeconds).ToString("0", CultureInfo.InvariantCulture);

        static string Ms(TimeSpan? t) => t is { } v ? string.Create(CultureInfo.InvariantCulture, $"{v.TotalMilliseconds:0} ms") : "never";

        var text = new StringBuilder()
            .Append(CultureInfo.InvariantCulture, $"{title}: promoted {Ms(PromotedAfter)} after the fault, settled {Ms(SettledAfter)}; ");
        text.Append(shards > 1
            ? $"healthy shards hit {HealthyBefore} before, {HealthyDuring} during the outage, {HealthyAfter} after ({PerSecond(HealthyBefore, FaultOn)}/s before, {PerSecond(HealthyDuring, SettledAfter)}/s during); failed shard hit {FailedDuring} during the outage, {FailedAfter} after"
            : $"reads hit {AllBefore} before, {FailedDuring} during the outage, {FailedAfter} after ({PerSecond(AllBefore, FaultOn)}/s before, {PerSecond(FailedDuring, SettledAfter)}/s during)");
        text.Append("; first hit after the promotion settled: ")
            .AppendJoin(", ", Enumerable.Range(0, shards).Select(s => $"shard {s} {Ms(FirstHitAfterPromotion(s))}"))
            .Append(CultureInfo.InvariantCulture, $" after the fault (on the failed shard's data stored before the fault: {Ms(FirstHitAfterPromotion(FailedShard, stored: true))}, ")
            .Append(CultureInfo.InvariantCulture, $"{Samples.Count(s => s.Shard == FailedShard && s.Hit && !FailoverReaders.Refilled(s) && s.At >= FaultOn + SettledAfter)} such hits after)")
            .Append(CultureInfo.InvariantCulture, $"; from the fault on: {FromFault.Count} calls ({FromFault.Count(c => c.Write)} refills), {Errors.Count} threw");
        if (Errors.Count > 0)
        {
            text.Append(" (").AppendJoin(", ", Errors.GroupBy(ErrorName).Select(g => $"{g.Count()}× {g.Key}")).Append(')');
        }

        return text
            .Append(CultureInfo.InvariantCulture, $", slowest {Ms(Slowest)} (sync {Ms(SlowestSync)}, async {Ms(SlowestAsync)})")
            .ToString();
    }

    /// <summary>The first exception of each type, for the output when some were thrown.</summary>
    public IEnumerable<string> DescribeErrors() =>
        Errors.GroupBy(ErrorName).Select(g => g.First())
            .Select(first => string.Create(CultureInfo.InvariantCulture, $"first {ErrorName(first)} ({(first.At - FaultOn).TotalMilliseconds:0} ms after the fault, {first.Elapsed.TotalMilliseconds:0} ms): {first.Error}"));

    private static string ErrorName(Sample call) => call.Error!.GetType().Name;
}

/// <summary>How one failover is measured (see <see cref="FailoverScenario.MeasureAsync"/>).</summary>
internal sealed record FailoverRun(string Title)
{
    /// <summary>The readers write a missed key back (cache-aside).</summary>
    public bool Refill { get; init; } = true;

    /// <summary>Shards 0 to this one excluded are waited for until each has a read hit after the promotion settled.</summary>
    public int WaitForShards { get; init; } = 1;

    /// <summary>How long, once the promotion has settled, to wait for those hits; the figures are reported either way.</summary>
    public TimeSpan HitAgainWithin { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Load before the fault, so every connection is made and the readers run at their pace.</summary>
    public TimeSpan Warm { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>Load after the hits again, so a relapse shows.</summary>
    public TimeSpan Observe { get; init; } = TimeSpan.FromSeconds(1);

    public TimeSpan PromotionBound { get; init; } = TimeSpan.FromSeconds(20);

    /// <summary>The readers stop by this time whatever happens.</summary>
    public TimeSpan Limit => Warm + PromotionBound + HitAgainWithin + Observe + TimeSpan.FromSeconds(10);
}

/// <summary>
/// One failover under load: the keys written (and replicated) first, the readers warmed up, the fault injected and
/// the promotion awaited, then the readers kept going until the failed shard (and any other asked for) hits again,
/// and a little longer. Every figure is reported, ours' window and probe counts too.
/// </summary>
internal static class FailoverScenario
{
    public static async Task<FailoverFigures> MeasureAsync(
        FailoverRun run,
        IDistributedCache cache,
        LabCache? ours,
        IReadOnlyList<(string Key, int Shard)> keys,
        Func<Task> replicated,
        Func<Task> inject,
        Func<long, Task<(TimeSpan After, TimeSpan SettledAfter)>> promoted,
        Func<Task>? duringOutage = null)
    {
        if (ours is not null)
        {
            // A cold first connect to six nodes can outlast a short operation timeout: not part of the measurement.
            await ours.WaitForConnectionAsync();
        }

        foreach (var (key, _) in keys)
        {
            await cache.SetAsync(key, Traffic.ValueOf(key), new DistributedCacheEntryOptions(), Lab.Ct);
        }

        var missing = new List<string>();
        foreach (var (key, _) in keys)
        {
            if (await cache.GetAsync(key, Lab.Ct) is null)
            {
                missing.Add(key);
            }
        }

        Assert.True(missing.Count == 0, $"not stored before the fault: {string.Join(", ", missing)}\n{ours?.DescribeLogs()}");

        // So the promoted replica holds every key of its shard.
        await replicated();

        await using var readers = FailoverReaders.Start(cache, keys, asyncReaders: 4, syncReaders: 2, run.Limit, run.Refill);
        await Task.Delay(run.Warm, Lab.Ct);

        var faultAt = Stopwatch.GetTimestamp();
        var faultOn = readers.Now;
        await inject();
        var side = duringOutage is null ? Task.CompletedTask : Task.Run(duringOutage);
        var (after, settledAfter) = await promoted(faultAt);
        await side;

        var settledOn = faultOn + settledAfter;
        for (var shard = 0; shard < run.WaitForShards; shard++)
        {
            var left = settledOn + run.HitAgainWithin - readers.Now;
            if (left > TimeSpan.Zero)
            {
                await readers.WaitForAsync(s => s.Shard == shard && s.Hit, settledOn, left);
            }
        }

        await Task.Delay(run.Observe, Lab.Ct);
        await readers.StopAsync();

        var figures = new FailoverFigures(readers.Samples, faultOn, after, settledAfter);
        Lab.Report(figures.Describe(run.Title, keys.Select(k => k.Shard).Distinct().Count()));
        foreach (var line in figures.DescribeErrors())
        {
            Lab.Report(line);
        }

        if (ours is not null)
        {
            Lab.Report($"windows opened {ours.LogCount(Log.IdWindowOpened)}, closed {ours.LogCount(Log.IdWindowClosed)}, probes failed {ours.LogCount(Log.IdProbeFailed)}; last log lines:\n"
                + string.Join('\n', ours.DescribeLogs().Split('\n').TakeLast(8)));
        }

        return figures;
    }
}

/// <summary>
/// Collects the assertions of a measurement, so that one run reports every bound it misses (with the figure) rather
/// than only the first.
/// </summary>
internal sealed class Expectations
{
    private readonly List<string> _failed = [];
    private readonly List<string> _all = [];

    public void That(bool holds, string what)
    {
        _all.Add($"{(holds ? "ok  " : "FAIL")} {what}");
        if (!holds)
        {
            _failed.Add(what);
        }
    }

    /// <summary>Beyond one window after the promotion: a probe that waits out one operation timeout, and scheduling noise.</summary>
    public static TimeSpan RecoverySlack(TimeSpan operationTimeout) => operationTimeout + Lab.Slack;

    /// <summary>
    /// The healthy shards' keys hit between the fault and the settled promotion, and from then to the end of the
    /// measurement (a window opened for every shard shows there: the outage of the failed shard is over by then).
    /// </summary>
    public void HealthyShardsKeepHitting(FailoverFigures figures, double percent)
    {
        That(figures.HealthyDuring.Percent >= percent, $"healthy shards hit {figures.HealthyDuring} between the fault and the promotion (at least {percent} %)");
        That(figures.HealthyAfter.Percent >= percent, $"healthy shards hit {figures.HealthyAfter} from the promotion to the end (at least {percent} %)");
    }

    /// <summary>
    /// How long to keep measuring after the promotion settled for a shard to hit again: the bound, and as long again
    /// (at most 10 s), so that a build that misses it still reports when it did hit. A passing build ends the wait
    /// at the hit.
    /// </summary>
    public static TimeSpan HitAgainWithin(TimeSpan window, TimeSpan operationTimeout)
    {
        var bound = window + RecoverySlack(operationTimeout);
        return bound + TimeSpan.FromTicks(Math.Min(bound.Ticks, TimeSpan.FromSeconds(10).Ticks));
    }

    /// <summary>No call from the fault on threw, none took longer than the operation timeout and slack.</summary>
    public void NoExceptionAndBoundedCalls(FailoverFigures figures, TimeSpan operationTimeout)
    {
        That(figures.Errors.Count == 0, $"{figures.Errors.Count} of {figures.FromFault.Count} calls from the fault on threw (none expected)");
        var bound = operationTimeout + Lab.Slack;
        That(figures.Slowest <= bound, $"slowest call {figures.Slowest.TotalMilliseconds:0} ms (at most {bound.TotalMilliseconds:0} ms)");
    }

    /// <summary>Each of shards 0 to <paramref name="shards"/> hit again at the latest one window after the promotion settled.</summary>
    public void UsedAgain(FailoverFigures figures, int shards, TimeSpan window, TimeSpan operationTimeout)
    {
        var bound = figures.SettledAfter + window + RecoverySlack(operationTimeout);
        for (var shard = 0; shard < shards; shard++)
        {
            var hit = figures.FirstHitAfterPromotion(shard);
            That(
                hit <= bound,
                $"shard {shard} hit again {(hit is { } h ? $"{h.TotalMilliseconds:0} ms" : "never")} after the fault; promotion settled after {figures.SettledAfter.TotalMilliseconds:0} ms (at most {bound.TotalMilliseconds:0} ms)");
        }
    }

    /// <summary>
    /// The failed shard's data stored before the fault (replicated, not written back by a refill) hit again at the
    /// latest one window after the promotion settled: the keys read from the replica during the outage were real
    /// reads, so the recovery has no reason to delete them.
    /// </summary>
    public void StoredDataUsedAgain(FailoverFigures figures, TimeSpan window, TimeSpan operationTimeout)
    {
        var bound = figures.SettledAfter + window + RecoverySlack(operationTimeout);
        var hit = figures.FirstHitAfterPromotion(stored: true);
        That(
            hit <= bound,
            $"the failed shard's data stored before the fault hit again {(hit is { } h ? $"{h.TotalMilliseconds:0} ms" : "never")} after the fault; promotion settled after {figures.SettledAfter.TotalMilliseconds:0} ms (at most {bound.TotalMilliseconds:0} ms)");
    }

    /// <summary>Reports every expectation, then fails with the missed ones (and <paramref name="context"/>).</summary>
    public void Verify(Func<string>? context = null)
    {
        Lab.Report(string.Join('\n', _all));
        Assert.True(_failed.Count == 0, string.Join('\n', _failed) + (context is null ? string.Empty : "\n" + context()));
    }
}

/// <summary>
/// A writer through a failover: sets keys of its own one after another (sync and async in turn, at most 400, for at
/// most 2 s), recording exceptions and each key's last value; afterwards every key reads back its last value or a
/// miss, never an earlier one.
/// </summary>
internal sealed class Writes(IDistributedCache cache)
{
    private const int MaxWrites = 400;
    private const int Keys = 20;
    private static readonly TimeSpan For = TimeSpan.FromSeconds(2);
    private readonly string[] _last = new string[Keys];
    private readonly List<Exception> _errors = [];

    public int Count { get; private set; }

    public async Task RunAsync()
    {
        var clock = Stopwatch.StartNew();
        for (var i = 0; i < MaxWrites && clock.Elapsed < For; i++)
        {
            var key = $"writer-{i % Keys}";
            var value = $"v{i}";
            try
            {
                if (i % 2 == 0)
                {
                    cache.SetString(key, value);
                }
                else
                {
                    await cache.SetStringAsync(key, value, Lab.Ct);
                }
            }
            catch (Exception exception) when (exception is not OperationCanceledException)
            {
                _errors.Add(exception);
            }

            _last[i % Keys] = value;
            Count++;
            await Task.Delay(5, Lab.Ct);
        }
    }

    public void Check(Expectations expect, IDistributedCache reader)
    {
        expect.That(_errors.Count == 0, $"{_errors.Count} of {Count} writes threw{(_errors.Count == 0 ? string.Empty : ": " + _errors[0])}");
        var stale = Enumerable.Range(0, Keys)
            .Where(k => _last[k] is not null && reader.GetString($"writer-{k}") is { } read && read != _last[k])
            .ToList();
        expect.That(stale.Count == 0, $"{stale.Count} written keys read back an earlier value after the failover (their last value or a miss expected)");
    }
}
