namespace Resilient.Caching.Recovery;

/// <summary>What became of one record: kept, or dropped because its set is full.</summary>
internal enum RecordOutcome
{
    /// <summary>The record is kept (newly, or it already was).</summary>
    Recorded,

    /// <summary>The set is full: the record was dropped, and the after-outage guarantee no longer holds for its key.</summary>
    Dropped,

    /// <summary>As <see cref="Dropped"/>, and the first drop since the last completed replay: the moment to say so loudly, once.</summary>
    OverflowStarted,
}

/// <summary>
/// Counts the records that did not fit, for both bounded sets (<see cref="PendingInvalidations"/> and
/// <see cref="MadeUpMisses"/>): a single drop is enough to lose the guarantee, so the two share one notice per
/// outage and one total.
/// </summary>
internal sealed class RecoveryOverflow
{
    private long _dropped;
    private long _droppedSinceReplay;

    /// <summary>Gets how many records have been dropped since the process started.</summary>
    public long Dropped => Volatile.Read(ref _dropped);

    /// <summary>Gets how many records were dropped since the last replay completed: the guarantee is lost for that many writes.</summary>
    public long DroppedSinceReplay => Volatile.Read(ref _droppedSinceReplay);

    /// <summary>Gets a value indicating whether records were dropped since the last replay completed.</summary>
    public bool Overflowed => DroppedSinceReplay != 0;

    public RecordOutcome Drop()
    {
        Interlocked.Increment(ref _dropped);
        return Interlocked.Increment(ref _droppedSinceReplay) == 1 ? RecordOutcome.OverflowStarted : RecordOutcome.Dropped;
    }

    /// <summary>
    /// Called when a replay has completed: the drops it saw at its start have been reported (and purged, when that is
    /// configured). Drops that happened during the replay stay, so they are reported with the next one.
    /// </summary>
    public void Acknowledge(long dropped) => Interlocked.Add(ref _droppedSinceReplay, -dropped);
}
