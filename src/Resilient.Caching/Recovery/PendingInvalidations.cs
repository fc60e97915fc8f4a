using System.Collections.Concurrent;
using System.Diagnostics;
using Resilient.Caching.Storage;

namespace Resilient.Caching.Recovery;

/// <summary>
/// The writes that did not certainly reach Redis (skipped inside the window, failed, or timed out with an unknown
/// outcome), remembered as invalidations until Redis is back: then the probe deletes those keys and evicts those tags
/// (<see cref="ReplayAsync"/>) before anyone else uses Redis again, so no value older than a write the application
/// made during the outage is served afterwards. A skipped <c>Set</c> is invalidated, never replayed: its value may be
/// stale by then, and a miss is always a correct answer for a cache.
/// </summary>
/// <remarks>
/// <para>
/// One record per key and kind (newest wins): recording a key again only moves its record past the replay that may
/// be applying it, so a record made while a replay runs is never lost. Keys are kept as the caller gave them, without
/// the <c>InstanceName</c> prefix (added at replay), so recording a key already recorded allocates nothing and
/// writes nothing.
/// </para>
/// <para>
/// Bounded by a capacity shared by the three kinds. Past it records are dropped and counted in
/// <see cref="Overflow"/>: the guarantee no longer holds, unless the instance purge is on, in which case the next
/// replay deletes every key under the prefixes instead (<c>SCAN</c> + <c>UNLINK</c>).
/// </para>
/// <para>
/// The records live in memory: a process that restarts during an outage forgets them, and the values its skipped
/// writes should have replaced stay in Redis until they expire.
/// </para>
/// </remarks>
internal sealed partial class PendingInvalidations
{
    // Values are replay generations (see Record); ConcurrentDictionary writes a long in place, so updating one allocates nothing.
    private readonly ConcurrentDictionary<string, long> _cacheKeys = new();
    private readonly ConcurrentDictionary<string, long> _outputEntries = new();
    private readonly ConcurrentDictionary<string, long> _outputTags = new();
    private readonly TimeProvider _timeProvider;
    private readonly StoredKeys _keys;

    private int _count;
    private long _generation;
    private ReplayResult? _lastReplay;

    /// <summary>Creates the store of one registration.</summary>
    /// <param name="capacity">At most this many records (all kinds together), and as many made-up-miss markers.</param>
    /// <param name="keys">Where the stock components keep the keys (the prefixes).</param>
    /// <param name="purgeOnOverflow">After an overflow, the replay deletes every key under the prefixes instead.</param>
    /// <param name="missLifetime">How long a made-up miss marks its key (see <see cref="MadeUpMisses"/>).</param>
    /// <param name="timeProvider">The clock for durations and marker lifetimes.</param>
    public PendingInvalidations(int capacity, StoredKeys keys, bool purgeOnOverflow, TimeSpan missLifetime, TimeProvider timeProvider)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(capacity);
        _keys = keys;
        if (purgeOnOverflow && keys.CacheInstanceName.Length == 0)
        {
            // Without a prefix the purge would delete every key of the database, other applications' included.
            throw new ArgumentException("Purging the instance on overflow needs a non-empty InstanceName.", nameof(keys));
        }

        Capacity = capacity;
        PurgeOnOverflow = purgeOnOverflow;
        _timeProvider = timeProvider;
        Misses = new MadeUpMisses(capacity, missLifetime, timeProvider, Overflow);
    }

    /// <summary>Gets the most records kept (all kinds together).</summary>
    public int Capacity { get; }

    /// <summary>Gets a value indicating whether a replay after an overflow purges the prefixes instead of deleting records.</summary>
    public bool PurgeOnOverflow { get; }

    /// <summary>Gets how many invalidations are waiting for Redis.</summary>
    public int Count => Volatile.Read(ref _count);

    /// <summary>Gets the drops of this store and of <see cref="Misses"/>.</summary>
    public RecoveryOverflow Overflow { get; } = new();

    /// <summary>Gets the keys whose last read was answered with a miss we made up.</summary>
    public MadeUpMisses Misses { get; }

    /// <summary>Gets the last completed replay, if any.</summary>
    public ReplayResult? LastReplay => Volatile.Read(ref _lastReplay);

    /// <summary>Remembers that a write of <paramref name="key"/> (or an eviction of a tag) may not have reached Redis.</summary>
    /// <returns>Whether the record was kept; <see cref="RecordOutcome.OverflowStarted"/> is returned once per outage.</returns>
    public RecordOutcome Record(KeyKind kind, string key)
    {
        Debug.Assert(key is not null);
        var records = RecordsOf(kind);

        // A replay round first moves to a new generation, then applies only records of older generations, and removes
        // each only if its value is still the one it saw. So a key recorded in the current generation needs nothing
        // more (no round has seen it yet, or the round that sees it began after this call did), and a key recorded
        // earlier is moved forward, which keeps its record if a round is applying the old one right now. Values only
        // grow: a record never comes back to a value a round saw.
        var generation = Volatile.Read(ref _generation);
        while (true)
        {
            if (records.TryGetValue(key, out var recorded))
            {
                if (recorded >= generation || records.TryUpdate(key, generation, recorded))
                {
                    return RecordOutcome.Recorded;
                }

                continue;
            }

            if (Interlocked.Increment(ref _count) > Capacity)
            {
                Interlocked.Decrement(ref _count);
                return Overflow.Drop();
            }

            if (records.TryAdd(key, generation))
            {
                return RecordOutcome.Recorded;
            }

            // Added by another caller in between: count it once, and look again.
            Interlocked.Decrement(ref _count);
        }
    }

    /// <summary>Whether a record of <paramref name="key"/> is waiting (for tests and diagnostics).</summary>
    internal bool Contains(KeyKind kind, string key) => RecordsOf(kind).ContainsKey(key);

    private ConcurrentDictionary<string, long> RecordsOf(KeyKind kind) => kind switch
    {
        KeyKind.CacheKey => _cacheKeys,
        KeyKind.OutputCacheEntry => _outputEntries,
        KeyKind.OutputCacheTag => _outputTags,
        _ => throw new ArgumentOutOfRangeException(nameof(kind)),
    };

    /// <summary>Removes a record once it has been applied, unless it was recorded again since it was seen.</summary>
    private void Applied(ConcurrentDictionary<string, long> records, KeyValuePair<string, long> seen)
    {
        if (records.TryRemove(seen))
        {
            Interlocked.Decrement(ref _count);
        }
    }
}
