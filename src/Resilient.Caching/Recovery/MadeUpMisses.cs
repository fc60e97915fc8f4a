using System.Collections.Concurrent;
using System.Diagnostics;

namespace Resilient.Caching.Recovery;

/// <summary>
/// The distributed-cache keys whose last read was answered with a miss we made up (skipped inside the window, or
/// failed), so that a value the application computed from that nothing is never written over the real one.
/// </summary>
/// <remarks>
/// <para>
/// Semantics: <see cref="Mark"/> on a skipped or failed read; <see cref="IsMarked"/> before a <c>Set</c>;
/// <see cref="Clear"/> on a real read (hit or miss) and on a <c>Set</c> or <c>Remove</c> that reached Redis. A
/// <c>Set</c> of a marked key is not applied inside the window (nothing is recorded: it is no intent to replace the
/// real value), and once Redis is back it lands only where the key is absent (a real miss would have led to the same
/// write); where the key holds a value, that value stays. The mark is not spent by a write: every request that read the
/// key during the outage wrote from nothing.
/// </para>
/// <para>
/// A session read that failed and then written (a request during the outage) therefore keeps the stored session
/// rather than replacing it with a new one built from nothing. Output
/// caching needs no markers: a page rendered after a made-up miss is a real rendering.
/// </para>
/// <para>
/// A marker only matters to the write that follows its read, within a request: it lapses after the lifetime given
/// at construction, and lapsed markers are swept, so the healthy path is back to one volatile read once an
/// outage's markers are gone. Bounded like <see cref="PendingInvalidations"/>; a marker that does not fit is dropped
/// and counted in the shared <see cref="RecoveryOverflow"/> (the instance purge then covers it too).
/// </para>
/// </remarks>
internal sealed class MadeUpMisses
{
    // Values are when the key was last marked (TimeProvider timestamps).
    private readonly ConcurrentDictionary<string, long> _marks = new();
    private readonly TimeProvider _timeProvider;
    private readonly RecoveryOverflow _overflow;
    private readonly long _lifetime;
    private readonly long _restampAfter;

    private int _count;
    private long _nextSweep;

    public MadeUpMisses(int capacity, TimeSpan lifetime, TimeProvider timeProvider, RecoveryOverflow overflow)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(capacity);
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(lifetime, TimeSpan.Zero);
        Capacity = capacity;
        Lifetime = lifetime;
        _timeProvider = timeProvider;
        _overflow = overflow;
        _lifetime = (long)(lifetime.TotalSeconds * timeProvider.TimestampFrequency);

        // A key marked again and again (a hot key read through a long outage) is re-stamped at most this often, so
        // marking it is a lock-free read; its marker may lapse up to this much early.
        _restampAfter = Math.Max(1, _lifetime / 16);
    }

    /// <summary>Gets the most markers kept.</summary>
    public int Capacity { get; }

    /// <summary>Gets how long a marker lasts after its key's last made-up miss.</summary>
    public TimeSpan Lifetime { get; }

    /// <summary>Gets how many keys are marked (lapsed markers not yet swept included).</summary>
    public int Count => Volatile.Read(ref _count);

    /// <summary>Remembers that the read of <paramref name="key"/> was answered with a miss we made up.</summary>
    public RecordOutcome Mark(string key)
    {
        Debug.Assert(key is not null);
        var now = _timeProvider.GetTimestamp();
        while (true)
        {
            if (_marks.TryGetValue(key, out var markedAt))
            {
                if (now - markedAt < _restampAfter || _marks.TryUpdate(key, now, markedAt))
                {
                    return RecordOutcome.Recorded;
                }

                continue;
            }

            if (Interlocked.Increment(ref _count) > Capacity)
            {
                Interlocked.Decrement(ref _count);
                return _overflow.Drop();
            }

            if (_marks.TryAdd(key, now))
            {
                return RecordOutcome.Recorded;
            }

            Interlocked.Decrement(ref _count);
        }
    }

    /// <summary>Forgets <paramref name="key"/>: it was read for real, or a write of it reached Redis.</summary>
    public void Clear(string key)
    {
        if (Volatile.Read(ref _count) != 0)
        {
            ClearMarked(key);
        }
    }

    /// <summary>Whether the last read of <paramref name="key"/> was a miss we made up (and the marker has not lapsed).</summary>
    public bool IsMarked(string key) => Volatile.Read(ref _count) != 0 && IsMarkedNow(key);

    /// <summary>Removes the lapsed markers; runs by itself at most twice per lifetime while markers exist.</summary>
    internal void Sweep(long now)
    {
        foreach (var mark in _marks)
        {
            if (now - mark.Value >= _lifetime && _marks.TryRemove(mark))
            {
                Interlocked.Decrement(ref _count);
            }
        }
    }

    private void ClearMarked(string key)
    {
        if (_marks.TryRemove(key, out _))
        {
            Interlocked.Decrement(ref _count);
        }

        SweepIfDue(_timeProvider.GetTimestamp());
    }

    private bool IsMarkedNow(string key)
    {
        var now = _timeProvider.GetTimestamp();
        SweepIfDue(now);
        return _marks.TryGetValue(key, out var markedAt) && now - markedAt < _lifetime;
    }

    private void SweepIfDue(long now)
    {
        var due = Volatile.Read(ref _nextSweep);
        if (now >= due && Interlocked.CompareExchange(ref _nextSweep, now + (_lifetime / 2), due) == due)
        {
            Sweep(now);
        }
    }
}
