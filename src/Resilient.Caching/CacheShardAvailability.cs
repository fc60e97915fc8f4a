namespace Resilient.Caching;

/// <summary>
/// One primary of a Redis Cluster and the unavailable window of its hash slots: while it is open, only the keys in
/// those slots skip Redis (reads go to the shard's replica where it has one); the other shards stay in use.
/// </summary>
/// <remarks>A live view: every property reads the current state.</remarks>
public sealed class CacheShardAvailability
{
    private readonly Topology.Shard _shard;

    internal CacheShardAvailability(Topology.Shard shard) => _shard = shard;

    /// <summary>Gets the primary serving the shard now, as <c>host:port</c> (after a failover, the promoted replica).</summary>
    public string ServerAddress => _shard.ServerAddress;

    /// <summary>
    /// Gets the shard's hash slot ranges, in order. Each range's <see cref="CacheSlotRange.ToString"/> writes it as
    /// Redis does (<c>0-5460</c>); <c>string.Join(",", Slots)</c> gives the whole list in that form.
    /// </summary>
    public IReadOnlyList<CacheSlotRange> Slots => _shard.SlotRanges;

    /// <summary>Gets a value indicating whether the shard's keys reach Redis: no window is open, and no failure is being checked.</summary>
    public bool IsAvailable => _shard.Controller.IsAvailable;

    /// <summary>Gets how long until a probe may check the shard again; <see cref="TimeSpan.Zero"/> while available.</summary>
    public TimeSpan RetryAfter => _shard.Controller.RetryAfter;

    /// <summary>Gets how long the shard's current outage has lasted; <see cref="TimeSpan.Zero"/> while available.</summary>
    public TimeSpan OutageDuration => _shard.Controller.OutageDuration;

    /// <summary>Gets how many outages the shard has had.</summary>
    public long Outages => _shard.Controller.Outages;

    /// <summary>Gets how many operations on the shard's keys skipped Redis during its current (or last) outage.</summary>
    public long SkippedOperations => _shard.Controller.SkippedOperations;
}
