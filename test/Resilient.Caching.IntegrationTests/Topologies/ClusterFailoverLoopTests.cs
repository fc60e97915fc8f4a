using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using Microsoft.Extensions.Caching.Distributed;
using Microsoft.Extensions.Logging;
using Resilient.Caching.IntegrationTests.FaultLab;
using Resilient.Caching.IntegrationTests.Infrastructure;
using StackExchange.Redis;
using ClusterNode = Resilient.Caching.IntegrationTests.Infrastructure.ClusterNode;
using Xunit;

namespace Resilient.Caching.IntegrationTests.Topologies;

/// <summary>
/// The cluster failover of the field report, run again and again on one cluster (3 primaries + 3 replicas, node
/// timeout 2 s, require-full-coverage no): under load on every shard (4 async + 2 sync readers writing a missed key
/// back) a primary is SIGKILLed, its replica promoted, the old node restarted and, every other run, failed over back
/// with CLUSTER FAILOVER. The window is the default (30 s), so the failed shard comes back early only if the promotion
/// is noticed. Every run, the failed shard hits again within 1 s of the promotion and does not go without a hit for
/// longer than that afterwards, its window closes within 1 s of the promotion, no call outlasts the operation timeout
/// + 0.1 s (the time the process itself was not scheduled taken off, and reported) and none throws; the figures of
/// each run and their spread over the runs are reported.
/// </summary>
/// <remarks>
/// Runs alone (after the parallel tests): its bounds are tight and it keeps a cluster busy for a few minutes.
/// <c>FAILOVER_LOOP_RUNS</c> sets the number of runs (20 by default); <c>FAILOVER_LOOP_TRACE=1</c> writes every run's
/// timeline (the library's log, the client's events and log, its view of the failed shard's slots), not only a failed
/// run's.
/// </remarks>
[Collection(nameof(RunsAlone))]
public sealed class ClusterFailoverLoopTests
{
    private const string InstanceName = "app:";
    private const int KeysPerShard = 20;
    private const double MinHealthyHitPercent = 99;
    private static readonly TimeSpan OperationTimeout = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan NodeTimeout = TimeSpan.FromSeconds(2);
    private static readonly TimeSpan CallBound = OperationTimeout + TimeSpan.FromMilliseconds(100);
    private static readonly TimeSpan HitAgainBound = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan PromotionBound = TimeSpan.FromSeconds(20);
    private static readonly TimeSpan Warm = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan Observe = TimeSpan.FromSeconds(1);

    // Long enough to tell "back late" from "back only when the old node returns" (the restart comes after this).
    private static readonly TimeSpan WaitForRecovery = TimeSpan.FromSeconds(6);

    private static int Runs => int.TryParse(Environment.GetEnvironmentVariable("FAILOVER_LOOP_RUNS"), CultureInfo.InvariantCulture, out var runs) && runs > 0 ? runs : 20;

    private static bool Trace => Environment.GetEnvironmentVariable("FAILOVER_LOOP_TRACE") is "1";

    [Fact]
    public async Task Primary_killed_run_after_run_its_shard_hits_again_within_a_second_of_each_promotion()
    {
        await using var cluster = await RedisCluster.StartAsync(new RedisClusterOptions { RequireFullCoverage = false, NodeTimeout = NodeTimeout }, Lab.Ct);
        var clock = Stopwatch.StartNew();
        var runs = new List<RunFigures>();
        for (var run = 1; run <= Runs; run++)
        {
            var figures = await RunOnceAsync(cluster, run, failBack: run % 2 == 0);
            runs.Add(figures);
            Lab.Report(figures.Describe());
            if (Trace || figures.Missed().Any())
            {
                Lab.Report(figures.Timeline);
            }
        }

        Lab.Report(Summary(runs, clock.Elapsed));
        Verify(runs);
    }

    /// <summary>
    /// The field report's worst runs, made certain: the replica is promoted only once the client has made its own
    /// checks after the kill (it is told not to fail over by itself, then CLUSTER FAILOVER FORCE 7 s after the kill),
    /// so nothing the client does by itself soon after tells it of the promotion. The failed shard is still in use
    /// within 1 s of the promotion.
    /// </summary>
    [Fact]
    public async Task Promotion_later_than_the_clients_own_checks_is_used_within_a_second()
    {
        await using var cluster = await RedisCluster.StartAsync(new RedisClusterOptions { RequireFullCoverage = false, NodeTimeout = NodeTimeout }, Lab.Ct);
        var figures = await RunOnceAsync(cluster, run: 1, failBack: false, promoteAfter: TimeSpan.FromSeconds(7));
        Lab.Report(figures.Describe());
        Lab.Report(figures.Timeline);
        Verify([figures]);
    }

    private static void Verify(IReadOnlyList<RunFigures> runs)
    {
        var expect = new Expectations();
        foreach (var run in runs)
        {
            var missed = run.Missed().ToList();
            expect.That(missed.Count == 0, $"run {run.Run}: {(missed.Count == 0 ? "every bound kept" : string.Join("; ", missed))}");
        }

        expect.Verify();
    }

    /// <summary>
    /// One run: keys on every shard, the readers, the kill, the promotion (by the cluster, or forced
    /// <paramref name="promoteAfter"/> the kill), the recovery; the restart, and the failover back when asked.
    /// </summary>
    private static async Task<RunFigures> RunOnceAsync(RedisCluster cluster, int run, bool failBack, TimeSpan? promoteAfter = null)
    {
        var primaries = await cluster.GetPrimariesAsync();
        var failing = primaries[(run - 1) % primaries.Count];
        var replica = await cluster.GetReplicaOfAsync(failing);
        var firstSlot = (await cluster.GetTopologyAsync()).Nodes.Single(n => n.Id == failing.Id).Slots.Min(r => r.Start);

        // Shard 0 is the failed one; the keys are fresh each run.
        List<ClusterNode> shards = [failing, .. primaries.Where(p => p != failing)];
        var keys = new List<(string Key, int Shard)>();
        for (var shard = 0; shard < shards.Count; shard++)
        {
            keys.AddRange((await cluster.KeysOnAsync(shards[shard], KeysPerShard, InstanceName, $"run{run}")).Select(k => (k, shard)));
        }

        using var timeline = new Timeline();
        var lab = new LabCache(cluster.ConnectionString, o =>
        {
            o.InstanceName = InstanceName;
            o.OperationTimeout = OperationTimeout;
            o.ConnectTimeout = OperationTimeout;
            o.UnavailableWindow = new ResilientRedisCacheOptions().UnavailableWindow;

            // The client's own log goes to the timeline.
            var configuration = ConfigurationOptions.Parse(cluster.ConnectionString);
            configuration.LoggerFactory = timeline.ClientLog;
            o.ConfigurationOptions = configuration;
        });
        try
        {
            return await MeasureAsync(cluster, lab, timeline, run, failBack, promoteAfter, failing, replica, firstSlot, keys);
        }
        finally
        {
            if (promoteAfter is not null)
            {
                await replica.Server.ExecuteAsync("CONFIG", "SET", "cluster-replica-no-failover", "no");
            }

            await timeline.StopAsync();
            await lab.DisposeAsync();
            if (!failing.IsRunning)
            {
                // The old node comes back as the new primary's replica, so the next run has a replica on every shard.
                await failing.RestartAsync(Lab.Ct);
            }

            await cluster.WaitForHealthyAsync(TimeSpan.FromSeconds(30));
        }
    }

    private static async Task<RunFigures> MeasureAsync(
        RedisCluster cluster,
        LabCache lab,
        Timeline timeline,
        int run,
        bool failBack,
        TimeSpan? promoteAfter,
        ClusterNode failing,
        ClusterNode replica,
        int firstSlot,
        IReadOnlyList<(string Key, int Shard)> keys)
    {
        await lab.WaitForConnectionAsync();
        foreach (var (key, _) in keys)
        {
            await lab.Cache.SetAsync(key, Traffic.ValueOf(key), new DistributedCacheEntryOptions(), Lab.Ct);
        }

        await failing.Server.WaitForReplicasInSyncAsync(PromotionBound);
        var shardOut = lab.Services.Core.Shards.Shards.Single(s => s.FirstSlot == firstSlot);
        timeline.Watch(await lab.GetMultiplexerAsync(), shardOut, failing.EndPoint, replica.EndPoint);

        if (promoteAfter is not null)
        {
            // Promoted by the test only.
            await replica.Server.ExecuteAsync("CONFIG", "SET", "cluster-replica-no-failover", "yes");
        }

        var figures = new RunFigures(run, failBack, failing.EndPoint, replica.EndPoint);
        var closures = new ConcurrentQueue<long>();
        lab.Availability.WindowClosed += (_, e) =>
        {
            if (e.ServerAddress == failing.EndPoint || e.ServerAddress == replica.EndPoint)
            {
                closures.Enqueue(Stopwatch.GetTimestamp());
            }
        };
        await using (var readers = FailoverReaders.Start(lab.Cache, keys, asyncReaders: 4, syncReaders: 2, TimeSpan.FromSeconds(90), refill: true))
        using (var freezes = new Freezes(() => readers.Now))
        {
            await Task.Delay(Warm, Lab.Ct);

            var faultAt = Stopwatch.GetTimestamp();
            figures.FaultOn = readers.Now;
            timeline.Mark($"SIGKILL {failing.EndPoint}");
            if (promoteAfter is { } after)
            {
                failing.Kill();
                await Task.Delay(after, Lab.Ct);
                timeline.Mark($"CLUSTER FAILOVER FORCE on {replica.EndPoint}");
                await RedisCluster.FailoverAsync(replica, "FORCE");
            }
            else
            {
                failing.Kill();
            }

            var promotion = await cluster.WaitForPromotionAsync(replica, faultAt, PromotionBound);
            figures.PromotedAfter = promotion.After;
            timeline.Mark($"{replica.EndPoint} promoted ({promotion.After.TotalMilliseconds:0} ms after the kill), settled after {promotion.SettledAfter.TotalMilliseconds:0} ms");

            // Until the shard is in use again (its window closed), or long enough to tell a late recovery from none.
            var promotedOn = figures.FaultOn + promotion.After;
            await Lab.EventuallyAsync(() => shardOut.Controller.IsAvailable && readers.Now > promotedOn, WaitForRecovery);
            await Task.Delay(Observe, Lab.Ct);
            figures.RecoveryEndOn = readers.Now;
            figures.WindowClosedAfterPromotion = closures.Select(c => (TimeSpan?)(Stopwatch.GetElapsedTime(faultAt, c) - promotion.After)).FirstOrDefault();

            if (failBack)
            {
                figures.RestartOn = readers.Now;
                timeline.Mark($"restart {failing.EndPoint}");
                var windowsBefore = lab.LogMark();
                await failing.RestartAsync(Lab.Ct);
                await cluster.WaitForHealthyAsync(TimeSpan.FromSeconds(30));
                var failbackAt = Stopwatch.GetTimestamp();
                timeline.Mark($"CLUSTER FAILOVER on {failing.EndPoint}");
                figures.FailBackOn = readers.Now;
                await RedisCluster.FailoverAsync(failing);
                var back = await cluster.WaitForPromotionAsync(failing, failbackAt, PromotionBound);
                timeline.Mark($"{failing.EndPoint} primary again ({back.After.TotalMilliseconds:0} ms), settled after {back.SettledAfter.TotalMilliseconds:0} ms");
                await Task.Delay(Observe, Lab.Ct);
                figures.WindowsOpenedOnFailBack = lab.LogCount(Log.IdWindowOpened, since: windowsBefore);
            }

            await readers.StopAsync();
            figures.Samples = readers.Samples;
            figures.Compute(freezes);
        }

        await timeline.StopAsync();
        figures.Timeline = timeline.Describe(lab);
        return figures;
    }

    private static string Summary(IReadOnlyList<RunFigures> runs, TimeSpan took)
    {
        static string Spread(IEnumerable<TimeSpan?> values)
        {
            var known = values.Where(v => v is not null).Select(v => v!.Value.TotalMilliseconds).Order().ToList();
            var never = values.Count(v => v is null);
            return known.Count == 0
                ? $"never ({never} runs)"
                : string.Create(CultureInfo.InvariantCulture, $"median {known[known.Count / 2]:0} ms, worst {known[^1]:0} ms, best {known[0]:0} ms{(never > 0 ? $", never in {never} runs" : string.Empty)}");
        }

        return new StringBuilder()
            .Append(CultureInfo.InvariantCulture, $"{runs.Count} runs in {took.TotalSeconds:0} s ({runs.Count(r => !r.Missed().Any())} kept every bound): ")
            .Append("promotion ").Append(Spread(runs.Select(r => (TimeSpan?)r.PromotedAfter))).Append(" after the kill; ")
            .Append("failed shard's first hit after the promotion ").Append(Spread(runs.Select(r => r.FirstHitAfterPromotion))).Append("; ")
            .Append("longest stretch without a hit from the promotion on ").Append(Spread(runs.Select(r => (TimeSpan?)r.LongestWithoutHit))).Append("; ")
            .Append("window closed after the promotion ").Append(Spread(runs.Select(r => r.WindowClosedAfterPromotion))).Append("; ")
            .Append("slowest call ").Append(Spread(runs.Select(r => (TimeSpan?)r.Slowest)))
            .Append(" (without the time the process did not run: ").Append(Spread(runs.Select(r => (TimeSpan?)r.SlowestWhileRunning))).Append(')')
            .Append(CultureInfo.InvariantCulture, $"; the process did not run {runs.Sum(r => r.Frozen.Count)} times, {runs.Sum(r => r.Frozen.Total.TotalMilliseconds):0} ms in all; ")
            .Append(CultureInfo.InvariantCulture, $"exceptions {runs.Sum(r => r.Errors)}; ")
            .Append(CultureInfo.InvariantCulture, $"loads (refills) of the failed shard per run: median {runs.Select(r => r.Loads).Order().ElementAt(runs.Count / 2)}, worst {runs.Max(r => r.Loads)}; ")
            .Append(CultureInfo.InvariantCulture, $"healthy shards' hits: worst {runs.Min(r => r.HealthyHitPercent):0.0} %")
            .ToString();
    }

    /// <summary>What one run measured, on the readers' clock.</summary>
    private sealed class RunFigures(int run, bool failBack, string failed, string promoted)
    {
        public int Run { get; } = run;

        public TimeSpan FaultOn { get; set; }

        public TimeSpan PromotedAfter { get; set; }

        public TimeSpan RecoveryEndOn { get; set; }

        public TimeSpan? RestartOn { get; set; }

        public TimeSpan? FailBackOn { get; set; }

        public TimeSpan? WindowClosedAfterPromotion { get; set; }

        public int WindowsOpenedOnFailBack { get; set; }

        public IReadOnlyList<Sample> Samples { get; set; } = [];

        public string Timeline { get; set; } = string.Empty;

        /// <summary>From the promotion to the start of the first read of the failed shard that hit; null if none did before the restart.</summary>
        public TimeSpan? FirstHitAfterPromotion { get; private set; }

        /// <summary>The longest time the failed shard's reads went without a hit, from the promotion to the restart (or the end).</summary>
        public TimeSpan LongestWithoutHit { get; private set; }

        public TimeSpan Slowest { get; private set; }

        /// <summary>The slowest call once the time the process did not run during it (<see cref="Freezes"/>) is taken off: the cache's part.</summary>
        public TimeSpan SlowestWhileRunning { get; private set; }

        /// <summary>How long in all, and how often, the process did not run from the kill on.</summary>
        public (TimeSpan Total, int Count) Frozen { get; private set; }

        public int Errors { get; private set; }

        public string? FirstError { get; private set; }

        /// <summary>The failed shard's misses written back from the kill on: what the application had to load again.</summary>
        public int Loads { get; private set; }

        public double HealthyHitPercent { get; private set; }

        /// <summary>From the restart to the end (the failover back included): the slowest call, the failed shard's longest time without a hit.</summary>
        public TimeSpan SlowestOnFailBack { get; private set; }

        public TimeSpan LongestWithoutHitOnFailBack { get; private set; }

        public void Compute(Freezes freezes)
        {
            var fromFault = Samples.Where(s => s.At >= FaultOn).ToList();
            SlowestWhileRunning = fromFault.Select(s => s.Elapsed - freezes.Overlap(s.At, s.At + s.Elapsed)).DefaultIfEmpty().Max();
            Frozen = freezes.Since(FaultOn);
            var promotedOn = FaultOn + PromotedAfter;
            var recoveryEnd = RestartOn ?? Samples.Select(s => s.At).DefaultIfEmpty(RecoveryEndOn).Max();
            FirstHitAfterPromotion = Samples.FirstOrDefault(s => s.Shard == 0 && s.Hit && s.At >= promotedOn && s.At < recoveryEnd) is { } hit ? hit.At - promotedOn : null;
            LongestWithoutHit = LongestGap(promotedOn, recoveryEnd);
            Slowest = fromFault.Select(s => s.Elapsed).DefaultIfEmpty().Max();
            var errors = fromFault.Where(s => s.Error is not null).ToList();
            Errors = errors.Count;
            FirstError = errors.Count == 0 ? null : string.Join("; ", errors.Take(3).Select(e =>
                string.Create(CultureInfo.InvariantCulture, $"{(e.At - FaultOn).TotalMilliseconds:0} ms after the kill{(FailBackOn is { } back && e.At >= back ? $" ({(e.At - back).TotalMilliseconds:0} ms after the CLUSTER FAILOVER back)" : RestartOn is { } restart && e.At >= restart ? $" ({(e.At - restart).TotalMilliseconds:0} ms after the restart)" : string.Empty)}, shard {e.Shard} {(e.Sync ? "sync" : "async")} {(e.Write ? "write" : "read")}")))
                + ", the first: " + errors[0].Error;
            Loads = fromFault.Count(s => s.Shard == 0 && s.Write);
            var healthy = HitRatio.Of(fromFault.Where(s => s.Shard != 0));
            HealthyHitPercent = healthy.Percent;
            if (RestartOn is { } restart)
            {
                SlowestOnFailBack = Samples.Where(s => s.At >= restart).Select(s => s.Elapsed).DefaultIfEmpty().Max();
                LongestWithoutHitOnFailBack = LongestGap(restart, Samples.Select(s => s.At).DefaultIfEmpty(restart).Max());
            }
        }

        /// <summary>The bounds this run missed, each with its figure.</summary>
        public IEnumerable<string> Missed()
        {
            if (FirstHitAfterPromotion is not { } first || first > HitAgainBound)
            {
                yield return $"first hit {Ms(FirstHitAfterPromotion)} after the promotion (at most {Ms(HitAgainBound)})";
            }

            if (LongestWithoutHit > HitAgainBound)
            {
                yield return $"the failed shard went {Ms(LongestWithoutHit)} without a hit from the promotion on (at most {Ms(HitAgainBound)})";
            }

            if (WindowClosedAfterPromotion is not { } closed || closed > HitAgainBound)
            {
                yield return $"its window closed {Ms(WindowClosedAfterPromotion)} after the promotion (at most {Ms(HitAgainBound)})";
            }

            if (SlowestWhileRunning > CallBound)
            {
                yield return $"slowest call {Ms(SlowestWhileRunning)} while the process ran, {Ms(Slowest)} in all (at most {Ms(CallBound)})";
            }

            if (Errors > 0)
            {
                yield return $"{Errors} calls threw: {FirstError}";
            }

            if (HealthyHitPercent < MinHealthyHitPercent)
            {
                yield return $"healthy shards hit {HealthyHitPercent:0.0} % (at least {MinHealthyHitPercent} %)";
            }

            if (RestartOn is not null && LongestWithoutHitOnFailBack > HitAgainBound)
            {
                yield return $"the failover back left the shard {Ms(LongestWithoutHitOnFailBack)} without a hit (at most {Ms(HitAgainBound)})";
            }
        }

        public string Describe() =>
            string.Create(CultureInfo.InvariantCulture, $"run {Run}: killed {failed}, {promoted} promoted {Ms(PromotedAfter)} after; failed shard's first hit {Ms(FirstHitAfterPromotion)} after the promotion, ")
            + string.Create(CultureInfo.InvariantCulture, $"longest without a hit {Ms(LongestWithoutHit)}, window closed {Ms(WindowClosedAfterPromotion)} after the promotion, {Loads} loads; ")
            + string.Create(CultureInfo.InvariantCulture, $"slowest call {Ms(Slowest)} ({SlowCalls()}){(Frozen.Count > 0 ? $", {Ms(SlowestWhileRunning)} without the {Frozen.Count} times ({Ms(Frozen.Total)} in all) the process did not run" : string.Empty)}, {Errors} exceptions, healthy shards hit {HealthyHitPercent:0.0} % of {Samples.Count(s => s.At >= FaultOn && s.Shard != 0 && !s.Write)}")
            + (failBack
                ? string.Create(CultureInfo.InvariantCulture, $"; restart and failover back: slowest call {Ms(SlowestOnFailBack)}, longest without a hit {Ms(LongestWithoutHitOnFailBack)}, windows opened {WindowsOpenedOnFailBack}")
                : "; no failover back");

        /// <summary>The three slowest calls from the kill on: when (from the kill), how long, which shard, what.</summary>
        private string SlowCalls() => string.Join(", ", Samples.Where(s => s.At >= FaultOn).OrderByDescending(s => s.Elapsed).Take(3).Select(s =>
            string.Create(CultureInfo.InvariantCulture, $"{s.Elapsed.TotalMilliseconds:0} ms at {(s.At - FaultOn).TotalMilliseconds:0} ms, shard {s.Shard} {(s.Sync ? "sync" : "async")} {(s.Write ? "write" : s.Hit ? "hit" : "miss")}")));

        private TimeSpan LongestGap(TimeSpan from, TimeSpan to)
        {
            var hits = Samples.Where(s => s.Shard == 0 && s.Hit && s.At >= from && s.At < to).Select(s => s.At).ToList();
            var longest = TimeSpan.Zero;
            var previous = from;
            foreach (var at in hits.Append(to))
            {
                longest = at - previous > longest ? at - previous : longest;
                previous = at;
            }

            return longest;
        }
    }

    private static string Ms(TimeSpan? value) => value is { } v ? string.Create(CultureInfo.InvariantCulture, $"{v.TotalMilliseconds:0} ms") : "never";

    /// <summary>
    /// The times this process did not run: a thread of its own sleeps 10 ms again and again, and a wake-up more than
    /// 100 ms late means the machine (2 cores shared with other work) did not schedule the process, whatever the cache
    /// did. A call that spans such a time is that much slower for a reason not the cache's; on the readers' clock.
    /// </summary>
    private sealed class Freezes : IDisposable
    {
        private static readonly TimeSpan Nap = TimeSpan.FromMilliseconds(10);
        private static readonly TimeSpan Late = TimeSpan.FromMilliseconds(100);
        private readonly ConcurrentQueue<(TimeSpan From, TimeSpan To)> _seen = new();
        private readonly Func<TimeSpan> _clock;
        private readonly Thread _thread;
        private volatile bool _stopped;

        public Freezes(Func<TimeSpan> clock)
        {
            _clock = clock;
            _thread = new Thread(Watch) { IsBackground = true, Name = "freeze watch" };
            _thread.Start();
        }

        /// <summary>How long the process did not run between <paramref name="from"/> and <paramref name="to"/>.</summary>
        public TimeSpan Overlap(TimeSpan from, TimeSpan to) =>
            _seen.Select(f => (f.To < to ? f.To : to) - (f.From > from ? f.From : from)).Where(d => d > TimeSpan.Zero).Aggregate(TimeSpan.Zero, (a, b) => a + b);

        /// <summary>How long in all, and how often, the process did not run from <paramref name="from"/> on.</summary>
        public (TimeSpan Total, int Count) Since(TimeSpan from)
        {
            var seen = _seen.Where(f => f.To > from).ToList();
            return (seen.Aggregate(TimeSpan.Zero, (a, f) => a + (f.To - f.From)), seen.Count);
        }

        public void Dispose()
        {
            _stopped = true;
            _thread.Join();
        }

        private void Watch()
        {
            while (!_stopped)
            {
                var before = _clock();
                Thread.Sleep(Nap);
                var after = _clock();
                if (after - before > Nap + Late)
                {
                    _seen.Enqueue((before + Nap, after));
                }
            }
        }
    }

    /// <summary>
    /// What happened during one run, stamped in real time: the library's log (at Debug), the client's events and log,
    /// and, polled every 25 ms, the failed shard's window and the client's routing of its probe key.
    /// </summary>
    private sealed class Timeline : IDisposable
    {
        private readonly ConcurrentQueue<(DateTimeOffset At, string What)> _events = new();
        private readonly CancellationTokenSource _stop = new();
        private Task _poller = Task.CompletedTask;
        private DateTimeOffset? _faultAt;

        public Timeline() => ClientLog = LoggerFactory.Create(b => b.SetMinimumLevel(LogLevel.Debug).AddProvider(new Provider(this)));

        public ILoggerFactory ClientLog { get; }

        public void Mark(string what)
        {
            if (what.StartsWith("SIGKILL", StringComparison.Ordinal))
            {
                _faultAt = DateTimeOffset.UtcNow;
            }

            Add(what);
        }

        public void Watch(IConnectionMultiplexer multiplexer, Topology.Shard shard, string failing, string replica)
        {
            multiplexer.ConfigurationChanged += (_, e) => Add($"client ConfigurationChanged {e.EndPoint}");
            multiplexer.ConfigurationChangedBroadcast += (_, e) => Add($"client ConfigurationChangedBroadcast {e.EndPoint}");
            multiplexer.HashSlotMoved += (_, e) => Add($"client HashSlotMoved {e.HashSlot} {e.OldEndPoint} -> {e.NewEndPoint}");
            multiplexer.ConnectionFailed += (_, e) => Add($"client ConnectionFailed {e.EndPoint} {e.ConnectionType} {e.FailureType}");
            multiplexer.ConnectionRestored += (_, e) => Add($"client ConnectionRestored {e.EndPoint} {e.ConnectionType}");
            _poller = Task.Run(async () =>
            {
                var last = string.Empty;
                while (!_stop.IsCancellationRequested)
                {
                    var state = Describe(multiplexer, shard, failing, replica);
                    if (state != last)
                    {
                        Add(state);
                        last = state;
                    }

                    try
                    {
                        await Task.Delay(25, _stop.Token);
                    }
                    catch (OperationCanceledException)
                    {
                        break;
                    }
                }
            });
        }

        public async Task StopAsync()
        {
            await _stop.CancelAsync();
            await _poller;
        }

        public void Dispose()
        {
            _stop.Dispose();
            ClientLog.Dispose();
        }

        /// <summary>Every record of the run, the library's log merged in, in time order, relative to the kill.</summary>
        public string Describe(LabCache lab)
        {
            var fault = _faultAt ?? DateTimeOffset.UtcNow;
            var all = _events.Concat(lab.Logs.GetSnapshot().Select(r => (r.Timestamp, $"lib [{r.Id.Id}] {r.Level}: {r.Message}{(r.Exception is null ? string.Empty : " (" + r.Exception.GetType().Name + ": " + r.Exception.Message + ")")}")));
            return string.Join('\n', all.OrderBy(e => e.Item1).Select(e => string.Create(CultureInfo.InvariantCulture, $"  {(e.Item1 - fault).TotalMilliseconds,8:0} ms  {e.Item2}")));
        }

        private static string Describe(IConnectionMultiplexer multiplexer, Topology.Shard shard, string failing, string replica)
        {
            var controller = shard.Controller;
            var paused = controller.TimeProvider.GetTimestamp() < shard.ReplicaReadsPausedUntil;
            // The owner of the probe key's slot in the client's last reading of the topology (CLUSTER NODES).
            string route;
            try
            {
                route = multiplexer.GetServers().FirstOrDefault(s => s.IsConnected && s.ServerType == ServerType.Cluster)?.ClusterConfiguration?.GetBySlot((RedisKey)shard.ProbeKey)?.EndPoint?.ToString() ?? "none";
            }
            catch (Exception exception) when (exception is RedisException or InvalidOperationException or ArgumentException)
            {
                route = "none (" + exception.GetType().Name + ": " + exception.Message + ")";
            }

            string Server(string endPoint)
            {
                var server = multiplexer.GetServers().FirstOrDefault(s => ShardAddress(s) == endPoint);
                return server is null ? $"{endPoint} unknown" : $"{endPoint} {(server.IsConnected ? "up" : "down")} {(server.IsReplica ? "replica" : "primary")}";
            }

            return $"window {(controller.IsAvailable ? "in use" : controller.IsOutage ? "open" : "suspected")} (shard {shard.ServerAddress}, probe key {shard.ProbeKey}){(paused ? ", replica reads paused" : string.Empty)}; "
                + $"client's topology gives the probe key's slot to {route}; {Server(failing)}; {Server(replica)}";
        }

        private static string ShardAddress(IServer server) => Topology.ShardMap.Format(server.EndPoint);

        private void Add(string what) => _events.Enqueue((DateTimeOffset.UtcNow, what));

        private sealed class Provider(Timeline timeline) : ILoggerProvider
        {
            public ILogger CreateLogger(string categoryName) => new Logger(timeline);

            public void Dispose()
            {
            }
        }

        private sealed class Logger(Timeline timeline) : ILogger
        {
            public IDisposable? BeginScope<TState>(TState state)
                where TState : notnull => null;

            public bool IsEnabled(LogLevel logLevel) => logLevel >= LogLevel.Debug;

            public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
                timeline.Add($"client log {logLevel}: {formatter(state, exception)}{(exception is null ? string.Empty : " (" + exception.GetType().Name + ")")}");
        }
    }
}
