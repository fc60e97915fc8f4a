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
    private readonly string[] _invalidatedPrefixes;
    private readonly StoredKeys _keys;
    private readonly Connection.IRedisConnection _connection;
    private readonly ResilientCacheMetrics _metrics;
    private readonly ILogger _logger;

    /// <param name="pending">Where invalidations wait for Redis.</param>
    /// <param name="invalidateKeysReadDuringOutage">Every key answered with a made-up miss is deleted at recovery too (the setting).</param>
    /// <param name="invalidatedPrefixes">The keys under these prefixes answered with a made-up miss are deleted at recovery (the setting).</param>
    /// <param name="keys">Where the stock cache keeps a key (for the check before a write computed from a made-up miss).</param>
    /// <param name="connection">The connection that check uses.</param>
    /// <param name="metrics">Counts dropped records.</param>
    /// <param name="logger">Logs the overflow, once per outage.</param>
    public OutageLedger(
        PendingInvalidations pending,
        bool invalidateKeysReadDuringOutage,
        IReadOnlyList<string> invalidatedPrefixes,
        StoredKeys keys,
        Connection.IRedisConnection connection,
        ResilientCacheMetrics metrics,
        ILogger logger)
    {
        _pending = pending;
        _invalidateReads = invalidateKeysReadDuringOutage;
        _invalidatedPrefixes = [.. invalidatedPrefixes];
        _keys = keys;
        _connection = connection;
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
                if (InvalidatesRead(key))
                {
                    Noted(_pending.Record(KeyKind.CacheKey, key));
                }

                break;
            case CacheOperation.Set when IsWriteFromMadeUpMiss(operation, target):
                // Computed from nothing, not an intent to replace the real value: nothing to invalidate.
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
    /// A write of a key whose last read was a miss the cache made up: the value was computed from nothing. The mark is
    /// not spent by the write: every request that read the key during the outage writes from nothing, however many
    /// there were. It lapses, or a real read or a write that reached Redis clears it.
    /// </summary>
    public bool IsWriteFromMadeUpMiss(CacheOperation operation, in CacheTarget target) =>
        operation == CacheOperation.Set && target.IsCacheKey && _pending.Misses.IsMarked(target.Key!);

    /// <summary>
    /// Whether a write may reach Redis: yes, unless it was computed from a made-up miss and the key holds a value now
    /// (the real one, which a real read would have returned: it stays). A key that is absent takes the write, as after
    /// a real miss. When Redis cannot say, the write is not applied. Synchronous callers.
    /// </summary>
    public bool MayWrite(CacheOperation operation, in CacheTarget target)
    {
        if (!IsWriteFromMadeUpMiss(operation, target))
        {
            return true;
        }

        try
        {
            return _connection.Database is { } database && !database.KeyExists(_keys.RedisKeyOf(KeyKind.CacheKey, target.Key!));
        }
        catch (Exception exception) when (Outages.RedisErrorClassifier.Classify(exception) != Outages.RedisFailureKind.None)
        {
            return false;
        }
    }

    /// <summary>The asynchronous <see cref="MayWrite"/>; completes synchronously (no allocation) when the key is not marked.</summary>
    public ValueTask<bool> MayWriteAsync(CacheOperation operation, CacheTarget target) =>
        IsWriteFromMadeUpMiss(operation, target) ? IsAbsentAsync(target.Key!) : new(true);

    private async ValueTask<bool> IsAbsentAsync(string key)
    {
        try
        {
            return _connection.Database is { } database && !await database.KeyExistsAsync(_keys.RedisKeyOf(KeyKind.CacheKey, key)).ConfigureAwait(false);
        }
        catch (Exception exception) when (Outages.RedisErrorClassifier.Classify(exception) != Outages.RedisFailureKind.None)
        {
            return false;
        }
    }

    private bool InvalidatesRead(string key)
    {
        if (_invalidateReads)
        {
            return true;
        }

        foreach (var prefix in _invalidatedPrefixes)
        {
            if (key.StartsWith(prefix, StringComparison.Ordinal))
            {
                return true;
            }
        }

        return false;
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
