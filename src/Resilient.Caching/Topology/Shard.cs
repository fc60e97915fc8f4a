namespace Resilient.Caching.Topology;

/// <summary>
/// One primary's hash slots in a Redis Cluster, with an unavailable window of its own: a failure of that primary
/// keeps only its keys off Redis. Known by its first slot, which a failover does not change: the promoted replica
/// takes over the same shard, window and all.
/// </summary>
internal sealed class Shard
{
    private string _serverAddress;
    private long _replicaReadsOffUntil;
    private bool _retired;

    private string _probeKey;

    public Shard(int firstSlot, WindowController controller, string probeKey, string serverAddress)
    {
        FirstSlot = firstSlot;
        Controller = controller;
        _probeKey = probeKey;
        _serverAddress = serverAddress;
        Slots = string.Empty;
    }

    public int FirstSlot { get; }

    public WindowController Controller { get; }

    /// <summary>Gets or sets a key of the cache's own in one of this shard's slots, for the probe's short-lived write.</summary>
    public string ProbeKey
    {
        get => Volatile.Read(ref _probeKey);
        set => Volatile.Write(ref _probeKey, value);
    }

    /// <summary>The primary serving the shard, as <c>host:port</c> (the promoted replica after a failover).</summary>
    public string ServerAddress
    {
        get => Volatile.Read(ref _serverAddress);
        set => Volatile.Write(ref _serverAddress, value);
    }

    /// <summary>The slot ranges, as Redis writes them (<c>0-5460</c>).</summary>
    public string Slots { get; set; }

    /// <summary>The slot ranges, typed (what <see cref="CacheShardAvailability.Slots"/> hands out).</summary>
    public IReadOnlyList<CacheSlotRange> SlotRanges { get; set; } = [];

    /// <summary>Whether the shard has a replica that may serve reads while its primary is out.</summary>
    public bool HasReplica { get; set; }

    /// <summary>Gets or sets a value indicating whether the shard left the layout (its slots now belong to other primaries).</summary>
    public bool Retired
    {
        get => Volatile.Read(ref _retired);
        set => Volatile.Write(ref _retired, value);
    }

    /// <summary>Replica reads failed: none until this timestamp (the controller's clock).</summary>
    public long ReplicaReadsOffUntil
    {
        get => Volatile.Read(ref _replicaReadsOffUntil);
        set => Volatile.Write(ref _replicaReadsOffUntil, value);
    }
}
