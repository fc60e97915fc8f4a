using System.Diagnostics.Metrics;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;
using Microsoft.Extensions.Logging;
using Resilient.Caching.Diagnostics;
using Resilient.Caching.Recovery;
using Resilient.Caching.Storage;

namespace Resilient.Caching.Tests.Recovery;

/// <summary>
/// What a call that did not certainly reach Redis leaves behind: a skipped read marks a made-up miss (and is
/// invalidated at recovery only when configured), a skipped write becomes an invalidation, a write computed from a
/// made-up miss is void, and a call that reached Redis clears the mark. The overflow is told once.
/// </summary>
public sealed class OutageLedgerTests : IDisposable
{
    private readonly ServiceProvider _services = new ServiceCollection().AddMetrics().BuildServiceProvider();
    private Harness? _harness;

    private static CacheTarget Key => CacheTarget.CacheKey("k");

    private Harness H => _harness ?? throw new InvalidOperationException("no ledger yet");

    private PendingInvalidations Pending => H.Pending;

    [Fact]
    public void SkippedGet_MarksAMadeUpMiss_WithoutAnInvalidation()
    {
        var ledger = Ledger();

        ledger.NotReached(CacheOperation.Get, Key);

        Assert.True(Pending.Misses.IsMarked("k"));
        Assert.False(Pending.Contains(KeyKind.CacheKey, "k"));
        Assert.Equal(0, Pending.Count);
    }

    [Fact]
    public void SkippedGet_WithInvalidateKeysReadDuringOutage_IsAnInvalidationToo()
    {
        var ledger = Ledger(invalidateKeysReadDuringOutage: true);

        ledger.NotReached(CacheOperation.Get, Key);

        Assert.True(Pending.Misses.IsMarked("k"));
        Assert.True(Pending.Contains(KeyKind.CacheKey, "k"));
        Assert.True(ledger.HasPendingWrite(Key));
    }

    [Fact]
    public void SkippedGetOfAPage_LeavesNothing()
    {
        // A page rendered after a made-up miss is a real rendering: output caching needs no marks.
        var ledger = Ledger(invalidateKeysReadDuringOutage: true);

        ledger.NotReached(CacheOperation.Get, CacheTarget.OutputCacheEntry("/home"));

        Assert.Equal(0, Pending.Misses.Count);
        Assert.Equal(0, Pending.Count);
    }

    [Theory]
    [InlineData(CacheOperation.Set, KeyKind.CacheKey)]
    [InlineData(CacheOperation.Remove, KeyKind.CacheKey)]
    [InlineData(CacheOperation.Set, KeyKind.OutputCacheEntry)]
    [InlineData(CacheOperation.EvictByTag, KeyKind.OutputCacheTag)]
    internal void SkippedWrite_IsAnInvalidation(CacheOperation operation, KeyKind kind)
    {
        var ledger = Ledger();

        ledger.NotReached(operation, new CacheTarget(kind, "k"));

        Assert.True(Pending.Contains(kind, "k"));
        Assert.Equal(1, Pending.Count);
        Assert.True(ledger.HasPendingWrite(new CacheTarget(kind, "k")));
        Assert.Equal(0, Pending.Misses.Count);
    }

    [Fact]
    public void SkippedRefresh_OrACallWithoutAKey_LeavesNothing()
    {
        var ledger = Ledger(invalidateKeysReadDuringOutage: true);

        ledger.NotReached(CacheOperation.Refresh, Key);
        ledger.NotReached(CacheOperation.Ping, CacheTarget.None);
        ledger.NotReached(CacheOperation.Remove, new CacheTarget(KeyKind.CacheKey, null));

        Assert.Equal(0, Pending.Count);
        Assert.Equal(0, Pending.Misses.Count);
    }

    [Fact]
    public void SkippedSets_OfAKeyReadAsAMadeUpMiss_AreVoid_HoweverMany()
    {
        var ledger = Ledger();
        ledger.NotReached(CacheOperation.Get, Key);

        ledger.NotReached(CacheOperation.Set, Key);
        ledger.NotReached(CacheOperation.Set, Key);

        // Two requests read the key during the outage: neither write is an intent to replace the real value.
        Assert.False(Pending.Contains(KeyKind.CacheKey, "k"));
        Assert.True(Pending.Misses.IsMarked("k"));

        // Once a read is real, a write is the application's own: remembered.
        ledger.Reached(CacheOperation.Get, Key);
        ledger.NotReached(CacheOperation.Set, Key);
        Assert.True(Pending.Contains(KeyKind.CacheKey, "k"));
    }

    [Fact]
    public void SkippedRemove_OfAKeyReadAsAMadeUpMiss_IsStillAnInvalidation()
    {
        var ledger = Ledger();
        ledger.NotReached(CacheOperation.Get, Key);

        ledger.NotReached(CacheOperation.Remove, Key);

        Assert.True(Pending.Contains(KeyKind.CacheKey, "k"));
        Assert.True(Pending.Misses.IsMarked("k"));
    }

    [Fact]
    public void IsWriteFromMadeUpMiss_OnlyASetOfAMarkedCacheKey_ForEveryWriterOfIt()
    {
        var ledger = Ledger();
        Assert.False(ledger.IsWriteFromMadeUpMiss(CacheOperation.Set, Key));
        ledger.NotReached(CacheOperation.Get, Key);

        Assert.False(ledger.IsWriteFromMadeUpMiss(CacheOperation.Get, Key));
        Assert.False(ledger.IsWriteFromMadeUpMiss(CacheOperation.Remove, Key));
        Assert.False(ledger.IsWriteFromMadeUpMiss(CacheOperation.Set, CacheTarget.OutputCacheEntry("k")));
        Assert.True(Pending.Misses.IsMarked("k"));

        // Not spent by the first write: every request that read the key during the outage wrote from nothing.
        Assert.True(ledger.IsWriteFromMadeUpMiss(CacheOperation.Set, Key));
        Assert.True(ledger.IsWriteFromMadeUpMiss(CacheOperation.Set, Key));

        // A real read clears it.
        ledger.Reached(CacheOperation.Get, Key);
        Assert.False(ledger.IsWriteFromMadeUpMiss(CacheOperation.Set, Key));
    }

    [Theory]
    [InlineData(CacheOperation.Get, false)]
    [InlineData(CacheOperation.Set, false)]
    [InlineData(CacheOperation.Remove, false)]
    [InlineData(CacheOperation.Refresh, true)]
    internal void Reached_ClearsTheMark_ForARealReadOrAWriteThatLanded(CacheOperation operation, bool stillMarked)
    {
        var ledger = Ledger();
        ledger.NotReached(CacheOperation.Get, Key);

        ledger.Reached(operation, Key);

        Assert.Equal(stillMarked, Pending.Misses.IsMarked("k"));
    }

    [Fact]
    public void ReadForReal_ClearsTheMark()
    {
        var ledger = Ledger();
        ledger.NotReached(CacheOperation.Get, Key);

        ledger.ReadForReal(Key);

        Assert.False(Pending.Misses.IsMarked("k"));
        Assert.Equal(0, Pending.Misses.Count);
    }

    [Fact]
    public void Overflow_IsLoggedOnce_AndEveryDropCounted()
    {
        using var dropped = new MetricCollector<long>(_services.GetRequiredService<IMeterFactory>(), ResilientCacheMetrics.MeterName, ResilientCacheMetrics.DroppedName);
        var ledger = Ledger(maxPending: 2);

        foreach (var key in new[] { "a", "b", "c", "d", "e" })
        {
            ledger.NotReached(CacheOperation.Set, CacheTarget.CacheKey(key));
        }

        var record = Assert.Single(H.Logger.Collector.GetSnapshot(), r => r.Id.Id == Log.IdInvalidationsDropped);
        Assert.Equal(LogLevel.Error, record.Level);
        Assert.Contains("More than 2 writes", record.Message, StringComparison.Ordinal);
        Assert.Equal(3, dropped.GetMeasurementSnapshot().Sum(m => m.Value));
        Assert.Equal(3, H.Availability.DroppedInvalidations);
        Assert.Equal(2, Pending.Count);
    }

    [Fact]
    public void Overflow_OfTheMadeUpMissMarks_IsTheSameNotice()
    {
        var ledger = Ledger(maxPending: 1);

        ledger.NotReached(CacheOperation.Get, CacheTarget.CacheKey("a"));
        ledger.NotReached(CacheOperation.Get, CacheTarget.CacheKey("b"));
        ledger.NotReached(CacheOperation.Set, CacheTarget.CacheKey("c"));
        ledger.NotReached(CacheOperation.Set, CacheTarget.CacheKey("d"));

        Assert.Equal(1, H.CountLogs(Log.IdInvalidationsDropped));
        Assert.False(Pending.Misses.IsMarked("b"));
        Assert.Equal(2, H.Availability.DroppedInvalidations);
    }

    public void Dispose()
    {
        _harness?.Dispose();
        _services.Dispose();
    }

    private OutageLedger Ledger(bool invalidateKeysReadDuringOutage = false, int maxPending = 1000)
    {
        _harness = new Harness(invalidateKeysReadDuringOutage: invalidateKeysReadDuringOutage, maxPending: maxPending, meterFactory: _services.GetRequiredService<IMeterFactory>());
        return new OutageLedger(_harness.Pending, invalidateKeysReadDuringOutage, [], new StoredKeys("app:"), _harness.Connection, _harness.Metrics, _harness.Logger);
    }
}
