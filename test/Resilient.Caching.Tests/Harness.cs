using Microsoft.Extensions.Diagnostics.Metrics.Testing;
using Microsoft.Extensions.Logging.Testing;
using Microsoft.Extensions.Time.Testing;
using Resilient.Caching.Connection;
using Resilient.Caching.Diagnostics;

namespace Resilient.Caching.Tests;

/// <summary>A connection that only counts resets, as the window sees it.</summary>
internal sealed class CountingConnection : IResettableConnection
{
    private int _generation;

    public int Generation => Volatile.Read(ref _generation);

    public int Resets => Generation;

    public void Reset() => Interlocked.Increment(ref _generation);
}

/// <summary>The decorator over a <see cref="ChaosCache"/>, with fake time, a fake logger and a counting connection.</summary>
internal sealed class Harness : IDisposable
{
    public Harness(bool ignoreExceptions = true, bool logIgnoredExceptions = true, TimeSpan? window = null)
    {
        Availability = new CacheAvailability(Time, window ?? TimeSpan.FromSeconds(30));
        Metrics = new ResilientCacheMetrics(meterFactory: null, Availability);
        Guard = new CacheGuard(Availability, Connection, Metrics, Logger, ignoreExceptions, logIgnoredExceptions);
        Cache = new ResilientDistributedCache(Guard, Connection, () =>
        {
            InnerCreated++;
            return Inner;
        }, disposeInner: false);
    }

    public FakeTimeProvider Time { get; } = new(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero));

    public FakeLogger Logger { get; } = new();

    public CountingConnection Connection { get; } = new();

    public ChaosCache Inner { get; } = new();

    public int InnerCreated { get; private set; }

    public CacheAvailability Availability { get; }

    internal ResilientCacheMetrics Metrics { get; }

    internal CacheGuard Guard { get; }

    public ResilientDistributedCache Cache { get; }

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
        Metrics.Dispose();
    }
}
