using StackExchange.Redis;

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

    public Shard(int firstSlot, WindowController controller, RedisKey probeKey, string serverAddress)
    {
        FirstSlot = firstSlot;
        Controller = controller;
        ProbeKey = probeKey;
        _serverAddress = serverAddress;
        Slots = string.Empty;
    }

    public int FirstSlot { get; }

    public WindowController Controller { get; }

    /// <summary>A key of the cache's own in one of this shard's slots, for the probe's short-lived write.</summary>
    public RedisKey ProbeKey { get; }

    /// <summary>The primary serving the shard, as <c>host:port</c> (the promoted replica after a failover).</summary>
    public string ServerAddress
    {
        get => Volatile.Read(ref _serverAddress);
        set => Volatile.Write(ref _serverAddress, value);
    }

    /// <summary>The slot ranges, as Redis writes them (<c>0-5460</c>).</summary>
    public string Slots { get; set; }

    /// <summary>Whether the shard has a replica that may serve reads while its primary is out.</summary>
    public bool HasReplica { get; set; }

    /// <summary>Replica reads failed: none until this timestamp (the controller's clock).</summary>
    public long ReplicaReadsOffUntil
    {
        get => Volatile.Read(ref _replicaReadsOffUntil);
        set => Volatile.Write(ref _replicaReadsOffUntil, value);
    }
}
