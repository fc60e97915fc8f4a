using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Reflection;
using Microsoft.Extensions.Caching.Distributed;
using Resilient.Caching.IntegrationTests.Infrastructure;
using StackExchange.Redis;
using Xunit;

namespace Resilient.Caching.IntegrationTests.FaultLab;

/// <summary>
/// The application's own thread-pool starvation is not an outage. A healthy Redis, a 1 s operation timeout, a pool
/// held at two threads to start with, and eight request loops on it, each request doing about a millisecond of CPU
/// work and one in five calling the synchronous API (sync over async in the application, blocking a pool thread
/// while it waits). With the library's defaults the client reads Redis's replies on that same starved pool, so some
/// calls time out: those timeouts are the application's stall, not Redis's, and open no window, so the cache keeps
/// hitting. Runs alone: it starves the process's thread pool on purpose and sets a process-wide client switch.
/// </summary>
[Collection(nameof(RunsAlone))]
public sealed class StarvationTests
{
    private const int Loops = 8;
    private const int Keys = 16;
    private static readonly TimeSpan RunFor = TimeSpan.FromSeconds(8);
    private static readonly TimeSpan Work = TimeSpan.FromMilliseconds(1);

    [Fact]
    public async Task Sync_calls_starving_the_pool_do_not_switch_the_cache_off_with_the_defaults()
    {
        var run = await RunAsync(dedicatedThreads: false);
        run.AssertStayedInUse();
    }

    /// <summary>The same with the client reading replies on threads of its own (the opt-in): fewer timeouts, if any.</summary>
    [Fact]
    public async Task Sync_calls_starving_the_pool_do_not_switch_the_cache_off_with_dedicated_threads()
    {
        var run = await RunAsync(dedicatedThreads: true);
        run.AssertStayedInUse();
    }

    private static async Task<Run> RunAsync(bool dedicatedThreads)
    {
        // The switch is process-wide and only ever turned on by the library: off for the defaults (an earlier test may
        // have turned it on), and back as it was afterwards.
        var flagBefore = ConnectionMultiplexer.GetFeatureFlag(Connection.RedisConnection.DedicatedThreadsFlag);
        ConnectionMultiplexer.SetFeatureFlag(Connection.RedisConnection.DedicatedThreadsFlag, false);
        try
        {
            await using var server = await RedisServer.StartNewAsync(cancellationToken: Lab.Ct);
            using var lab = new LabCache(server.ConnectionString, o =>
            {
                Lab.UseDefaultTimeouts(o);
                o.OperationTimeout = TimeSpan.FromSeconds(1);
                o.UnavailableWindow = new ResilientRedisCacheOptions().UnavailableWindow;
                o.DedicatedThreads = dedicatedThreads;
            });
            await lab.WaitForConnectionAsync(); // A cold first connect on a loaded machine can take longer than 1 s.
            await lab.WarmUpAsync();
            var readsOnPool = ReadsRepliesOnThePool(await lab.GetMultiplexerAsync());
            Assert.True(readsOnPool == !dedicatedThreads, $"the client reads replies on the thread pool: {readsOnPool}, expected {!dedicatedThreads}");

            var cache = lab.Cache;
            for (var i = 0; i < Keys; i++)
            {
                await cache.SetStringAsync($"starve:{i}", "value", Lab.Ct);
            }

            var run = await StarveAsync(cache);
            var stallTimeouts = lab.Logs.GetSnapshot().Count(r => r.Id.Id == Log.IdErrorWhileUnavailable && r.Message.Contains("Timeout", StringComparison.Ordinal));
            run = run with
            {
                Windows = lab.Availability.Outages,
                Suspicions = lab.LogCount(Log.IdFailureSuspected),
                StallTimeouts = stallTimeouts,
                Label = dedicatedThreads ? "dedicated threads" : "defaults",
            };
            Lab.Report(run + "\n" + lab.DescribeLogs());
            TestContext.Current.SendDiagnosticMessage(run.ToString());
            return run;
        }
        finally
        {
            ConnectionMultiplexer.SetFeatureFlag(Connection.RedisConnection.DedicatedThreadsFlag, flagBefore);
        }
    }

    /// <summary>The loops, with the pool's minimum at two threads for their duration (restored afterwards: it is process-wide).</summary>
    private static async Task<Run> StarveAsync(IDistributedCache cache)
    {
        long hits = 0, misses = 0, errors = 0;
        ThreadPool.GetMinThreads(out var minWorkers, out var minIo);
        using var sampler = new PoolSampler();
        var clock = Stopwatch.StartNew();
        Assert.True(ThreadPool.SetMinThreads(2, 2), "the pool's minimum could not be set");
        try
        {
            var loops = Enumerable.Range(0, Loops).Select(loop => Task.Run(async () =>
            {
                for (var n = 0; clock.Elapsed < RunFor && n < 100_000; n++)
                {
                    BusyWork(Work);
                    try
                    {
                        // One request in five blocks its pool thread on the synchronous API.
                        var key = $"starve:{n % Keys}";
                        var value = n % 5 == loop % 5 ? cache.GetString(key) : await cache.GetStringAsync(key, Lab.Ct);
                        Interlocked.Increment(ref value is null ? ref misses : ref hits);
                    }
                    catch (Exception)
                    {
                        Interlocked.Increment(ref errors);
                    }
                }
            })).ToArray();
            await Task.WhenAll(loops).WaitAsync(RunFor + TimeSpan.FromSeconds(60), Lab.Ct);
        }
        finally
        {
            ThreadPool.SetMinThreads(minWorkers, minIo);
        }

        var (maxHop, maxThreads) = sampler.Stop();
        return new Run(hits, misses, errors, clock.Elapsed, maxHop, maxThreads);
    }

    /// <summary>About <paramref name="duration"/> of CPU, bounded in count too should the clock stall.</summary>
    private static void BusyWork(TimeSpan duration)
    {
        var until = Stopwatch.GetTimestamp() + (long)(duration.TotalSeconds * Stopwatch.Frequency);
        for (var i = 0; i < 10_000_000 && Stopwatch.GetTimestamp() < until; i++)
        {
            Thread.SpinWait(20);
        }
    }

    /// <summary>
    /// Whether the client reads the interactive connection's replies on the thread pool (the premise of the defaults'
    /// case): StackExchange.Redis says what actually happened through an internal interface, for tests and diagnostics.
    /// </summary>
    private static bool ReadsRepliesOnThePool(IConnectionMultiplexer multiplexer)
    {
        var diagnostics = typeof(ConnectionMultiplexer).Assembly.GetType("StackExchange.Redis.IInternalConnectionMultiplexer")
            ?.GetMethod("IsSyncReader", [typeof(EndPoint), typeof(ConnectionType)]);
        Assert.NotNull(diagnostics);
        var syncReader = (bool?)diagnostics.Invoke(multiplexer, [multiplexer.GetEndPoints()[0], ConnectionType.Interactive]);
        Assert.NotNull(syncReader);
        return syncReader == false;
    }

    private sealed record Run(long Hits, long Misses, long Errors, TimeSpan Took, TimeSpan MaxPoolHop, int MaxPoolThreads)
    {
        public string Label { get; init; } = string.Empty;

        public long Windows { get; init; }

        public int Suspicions { get; init; }

        public int StallTimeouts { get; init; }

        private long Total => Hits + Misses + Errors;

        public double HitRatio => (double)Hits / Math.Max(1, Total);

        /// <summary>At least 95 % hits, no exception, at most one window (and, with the default 30 s window, that would cost the hits anyway).</summary>
        public void AssertStayedInUse()
        {
            Assert.True(Total >= 500, $"too few requests to judge: {this}");
            Assert.Equal(0, Errors);
            Assert.True(Windows <= 1, $"windows opened: {this}");
            Assert.True(HitRatio >= 0.95, $"the cache did not stay in use: {this}");
        }

        public override string ToString() => string.Create(CultureInfo.InvariantCulture,
            $"starvation ({Label}): {Total} requests in {Took.TotalSeconds:0.0} s: {Hits} hits ({100 * HitRatio:0.00} %), {Misses} misses, {Errors} errors; " +
            $"{Windows} windows, {Suspicions} suspicions, {StallTimeouts} timeouts taken for a stall; pool: up to {MaxPoolThreads} threads, a queued item waited up to {MaxPoolHop.TotalMilliseconds:0} ms");
    }

    /// <summary>
    /// How starved the pool was: every 50 ms, on a thread of its own, how long an item queued to the pool waits to run,
    /// and how many threads the pool has. Bounded in time and count.
    /// </summary>
    private sealed class PoolSampler : IDisposable
    {
        private readonly CancellationTokenSource _stop = new();
        private readonly Thread _thread;
        private TimeSpan _maxHop;
        private int _maxThreads;

        public PoolSampler()
        {
            _thread = new Thread(Sample) { IsBackground = true, Name = "pool sampler" };
            _thread.Start();
        }

        public (TimeSpan MaxHop, int MaxThreads) Stop()
        {
            _stop.Cancel();
            _thread.Join(TimeSpan.FromSeconds(10));
            return (_maxHop, _maxThreads);
        }

        public void Dispose()
        {
            _stop.Cancel();
            _stop.Dispose();
        }

        private void Sample()
        {
            var token = _stop.Token;
            for (var i = 0; i < 10_000 && !token.IsCancellationRequested; i++)
            {
                var ran = new TaskCompletionSource<long>(TaskCreationOptions.RunContinuationsAsynchronously);
                var queued = Stopwatch.GetTimestamp();
                ThreadPool.UnsafeQueueUserWorkItem(static r => r.TrySetResult(Stopwatch.GetTimestamp()), ran, preferLocal: false);
                var hop = ran.Task.Wait(TimeSpan.FromSeconds(5)) ? Stopwatch.GetElapsedTime(queued, ran.Task.Result) : TimeSpan.FromSeconds(5);
                if (hop > _maxHop)
                {
                    _maxHop = hop;
                }

                _maxThreads = Math.Max(_maxThreads, ThreadPool.ThreadCount);
                token.WaitHandle.WaitOne(TimeSpan.FromMilliseconds(50));
            }
        }
    }
}
