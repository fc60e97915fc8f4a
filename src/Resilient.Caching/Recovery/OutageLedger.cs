using Microsoft.Extensions.Logging;
using Resilient.Caching.Diagnostics;
using Resilient.Caching.Storage;

namespace Resilient.Caching.Recovery;

/// <summary>
/// What a call that did not certainly reach Redis leaves behind, and the rule for a write computed from a made-up
/// miss: a write (skipped, failed, or with an unknown outcome) becomes an invalidation applied before Redis is used
/// again; a read answered with a made-up miss marks its key (<see cref="MadeUpMisses"/>), so that a value computed
/// from it never overwrites the real one.
/// </summary>
internal sealed class OutageLedger
{
    private readonly PendingInvalidations _pending;
    private readonly bool _invalidateReads;
    private readonly ResilientCacheMetrics _metrics;
    private readonly ILogger _logger;

    /// <param name="pending">Where invalidations wait for Redis.</param>
    /// <param name="invalidateKeysReadDuringOutage">Keys answered with a made-up miss are deleted at recovery too (the setting).</param>
    /// <param name="metrics">Counts dropped records.</param>
    /// <param name="logger">Logs the overflow, once per outage.</param>
    public OutageLedger(PendingInvalidations pending, bool invalidateKeysReadDuringOutage, ResilientCacheMetrics metrics, ILogger logger)
    {
        _pending = pending;
        _invalidateReads = invalidateKeysReadDuringOutage;
        _metrics = metrics;
        _logger = logger;
    }

    /// <summary>A call skipped Redis, or failed: what it leaves behind is remembered.</summary>
    public void NotReached(CacheOperation operation, in CacheTarget target)
    {
        if (target.Key is not { } key)
        {
            return;
        }

        switch (operation)
        {
            case CacheOperation.Get when target.Kind == KeyKind.CacheKey:
                Noted(_pending.Misses.Mark(key));
                if (_invalidateReads)
                {
                    Noted(_pending.Record(KeyKind.CacheKey, key));
                }

                break;
            case CacheOperation.Set when IsWriteFromMadeUpMiss(operation, target):
                // Void, not an intent to replace the real value: nothing to invalidate.
                break;
            case CacheOperation.Set or CacheOperation.Remove or CacheOperation.EvictByTag:
                Noted(_pending.Record(target.Kind, key));
                break;
        }
    }

    /// <summary>A call reached Redis: a real read, or a write that landed, means the key's value is no longer one made up from nothing.</summary>
    public void Reached(CacheOperation operation, in CacheTarget target)
    {
        if (target.IsCacheKey && operation is CacheOperation.Get or CacheOperation.Set or CacheOperation.Remove)
        {
            _pending.Misses.Clear(target.Key!);
        }
    }

    /// <summary>A replica answered the read: a real read.</summary>
    public void ReadForReal(in CacheTarget target) => _pending.Misses.Clear(target.Key!);

    /// <summary>Whether a write of the key may not have reached Redis (a replica would still hold the value it replaced).</summary>
    public bool HasPendingWrite(in CacheTarget target) => _pending.Contains(target.Kind, target.Key!);

    /// <summary>
    /// A write of a key whose last read was a miss the cache made up: the value was computed from nothing, so it is
    /// never applied (inside the window or after it). The mark is spent by this write.
    /// </summary>
    public bool IsWriteFromMadeUpMiss(CacheOperation operation, in CacheTarget target)
    {
        if (operation != CacheOperation.Set || !target.IsCacheKey || !_pending.Misses.IsMarked(target.Key!))
        {
            return false;
        }

        _pending.Misses.Clear(target.Key!);
        return true;
    }

    private void Noted(RecordOutcome outcome)
    {
        if (outcome == RecordOutcome.OverflowStarted)
        {
            _metrics.InvalidationsDropped();
            Log.InvalidationsDropped(_logger, _pending.Capacity, _pending.PurgeOnOverflow);
        }
        else if (outcome == RecordOutcome.Dropped)
        {
            _metrics.InvalidationsDropped();
        }
    }
}
