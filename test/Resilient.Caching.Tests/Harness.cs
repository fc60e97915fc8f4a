using Microsoft.Extensions.Diagnostics.Metrics.Testing;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;
using Microsoft.Extensions.Time.Testing;
using Resilient.Caching.Connection;
using Resilient.Caching.Diagnostics;
using Resilient.Caching.Guard;
using Resilient.Caching.Outages;
using Resilient.Caching.Storage;

namespace Resilient.Caching.Tests;

/// <summary>A connection as the guard sees it: always ready unless told otherwise, counting resets, probing through a delegate.</summary>
internal sealed class CountingConnection : IRedisConnection
{
    private int _generation;
    private int _takeoverChecks;

    public int Generation => Volatile.Read(ref _generation);

    public int Resets => Generation;

    public int Probes { get; private set; }

    public bool IsReady { get; set; } = true;

    public Exception? ConnectFailure => null;

    public StackExchange.Redis.IDatabase? Database { get; set; }

    /// <summary>What a probe does; by default it succeeds.</summary>
    public Func<Task> Probe { get; set; } = static () => Task.CompletedTask;

    public ValueTask<bool> WaitReadyAsync(TimeSpan timeout, CancellationToken released) => new(IsReady);

    public bool WaitReady(TimeSpan timeout, CancellationToken released) => IsReady;

    /// <summary>The key of the last probe's write (the shard's own).</summary>
    public StackExchange.Redis.RedisKey ProbeKey { get; private set; }

    public Task ProbeAsync(TimeSpan budget, StackExchange.Redis.RedisKey key)
    {
        Probes++;
        ProbeKey = key;
        return Probe();
    }

    /// <summary>Whether one of the replicas asked about took over; by default none did.</summary>
    public Func<IReadOnlyList<System.Net.EndPoint>, bool> TakenOver { get; set; } = static _ => false;

    public int TakeoverChecks => Volatile.Read(ref _takeoverChecks);

    public Task<bool> TakenOverAsync(TimeSpan budget, IReadOnlyList<System.Net.EndPoint> replicas)
    {
        Interlocked.Increment(ref _takeoverChecks);
        return Task.FromResult(TakenOver(replicas));
    }

    public void Reset(bool connectAgain = false) => Interlocked.Increment(ref _generation);
}

/// <summary>The decorator over a <see cref="ChaosCache"/>, with fake time, a fake logger and a counting connection.</summary>
internal sealed class Harness : IDisposable
{
    public Harness(
        bool ignoreExceptions = true, bool logIgnoredExceptions = true, TimeSpan? window = null, bool invalidateKeysReadDuringOutage = false, int maxPending = 1000,
        string name = CacheAvailability.DefaultName, ILogger? logger = null, System.Diagnostics.Metrics.IMeterFactory? meterFactory = null)
    {
        var options = new ResilientRedisCacheOptions
        {
            IgnoreExceptions = ignoreExceptions,
            LogIgnoredExceptions = logIgnoredExceptions,
            UnavailableWindow = window ?? TimeSpan.FromSeconds(30),
            OperationTimeout = OperationTimeout,
            InvalidateKeysReadDuringOutage = invalidateKeysReadDuringOutage,
            MaxPendingInvalidations = maxPending,
            InstanceName = "app:",
        };
        Core = new CacheCore(name, options, new StoredKeys(options.InstanceName), Connection, Time, logger ?? Logger, meterFactory,
            isThreadPoolStarved: () => ThreadPoolStarved);

        // The probe meets whatever the inner cache is doing: a faulty Redis fails it, a healthy one answers.
        Connection.Probe = () => Inner.GetAsync("probe");
        Cache = new ResilientDistributedCache(Guard, Connection, () =>
        {
            InnerCreated++;
            return Inner;
        }, disposeInner: false);
    }

    /// <summary>The parts under test, built as the library builds them.</summary>
    internal CacheCore Core { get; }

    public FakeTimeProvider Time { get; } = new(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero));

    public FakeLogger Logger { get; } = new();

    public CountingConnection Connection { get; } = new();

    public ChaosCache Inner { get; } = new();

    public int InnerCreated { get; private set; }

    public static TimeSpan OperationTimeout { get; } = TimeSpan.FromSeconds(5);

    public CacheAvailability Availability => Core.Availability;

    internal WindowController Controller => Core.Deployment;

    internal Resilient.Caching.Recovery.PendingInvalidations Pending => Core.Pending;

    /// <summary>What the guard is told about the thread pool when a call times out.</summary>
    public bool ThreadPoolStarved { get; set; }

    internal ResilientCacheMetrics Metrics => Core.Metrics;

    internal CacheGuard Guard => Core.Guard;

    public ResilientDistributedCache Cache { get; }

    /// <summary>Waits (real time, 10 s at most) for what a background probe does; fails the test if it does not happen.</summary>
    public static async Task UntilAsync(Func<bool> condition)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, "condition not met within 10 s");
            await Task.Delay(10, TestContext.Current.CancellationToken);
        }
    }

    public int CountLogs(int eventId) => Logger.Collector.GetSnapshot().Count(r => r.Id.Id == eventId);

    /// <summary>Opens the window with one failing read.</summary>
    public void OpenWindow()
    {
        var fault = Inner.Fault;
        Inner.Fault = Fault.ThrowsSynchronously;
        Assert.Null(Cache.Get("open"));
        Inner.Fault = fault;
        Assert.False(Availability.IsAvailable);
    }

    public void Dispose()
    {
        Inner.Release.TrySetResult();
        Core.Dispose();
    }
}
