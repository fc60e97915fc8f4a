using System.Net;
using Resilient.Caching.Outages;

namespace Resilient.Caching.Topology;

/// <summary>
/// Keys that share an unavailable window: one primary's hash slots in a Redis Cluster, or every key of a single
/// server or Sentinel deployment (<see cref="ShardMap.Deployment"/>). A cluster shard is known by its first slot,
/// which a failover does not change: the promoted replica takes over the same shard, window and all.
/// </summary>
/// <remarks>
/// Its layout (primary, slots, replica, probe key) is changed only by <see cref="ShardMap"/>; the replica readers
/// pause and resume its replica reads. Every field is read lock-free.
/// </remarks>
internal sealed class Shard
{
    private Layout _layout;
    private long _replicaReadsPausedUntil;
    private bool _retired;
    private int _watchedForTakeover;

    public Shard(int firstSlot, WindowController controller, string probeKey, bool isDeployment = false)
    {
        FirstSlot = firstSlot;
        Controller = controller;
        IsDeployment = isDeployment;
        _layout = new Layout(string.Empty, string.Empty, [], false, [], probeKey);
    }

    public int FirstSlot { get; }

    /// <summary>Gets the shard's unavailable window.</summary>
    public WindowController Controller { get; }

    /// <summary>Gets a value indicating whether this is the window of the whole deployment rather than of one cluster primary.</summary>
    public bool IsDeployment { get; }

    /// <summary>Gets a key of the cache's own in one of this shard's slots, for the probe's short-lived write.</summary>
    public string ProbeKey => Volatile.Read(ref _layout).ProbeKey;

    /// <summary>Gets the primary serving the shard, as <c>host:port</c> (the promoted replica after a failover).</summary>
    public string ServerAddress => Volatile.Read(ref _layout).ServerAddress;

    /// <summary>Gets the slot ranges, as Redis writes them (<c>0-5460</c>).</summary>
    public string Slots => Volatile.Read(ref _layout).Slots;

    /// <summary>Gets the slot ranges, typed (what <see cref="CacheShardAvailability.Slots"/> hands out).</summary>
    public IReadOnlyList<CacheSlotRange> SlotRanges => Volatile.Read(ref _layout).SlotRanges;

    /// <summary>Gets a value indicating whether the shard has a replica that may serve reads while its primary is out.</summary>
    public bool HasReplica => Volatile.Read(ref _layout).HasReplica;

    /// <summary>Gets where the replicas of the shard's primary are, as the client last reported them (the candidates for a promotion).</summary>
    public IReadOnlyList<EndPoint> Replicas => Volatile.Read(ref _layout).Replicas;

    /// <summary>Gets a value indicating whether the shard left the layout (its slots now belong to other primaries).</summary>
    public bool Retired => Volatile.Read(ref _retired);

    /// <summary>The timestamp (the window's clock) until which replica reads are paused after one failed; 0 when they are not.</summary>
    public long ReplicaReadsPausedUntil => Volatile.Read(ref _replicaReadsPausedUntil);

    /// <summary>Describes the shard in a log line: empty for the deployment's window.</summary>
    public string Describe(string reason) => IsDeployment ? reason : $"{reason} on shard {ServerAddress} (slots {Slots})";

    internal void Relayout(string serverAddress, IReadOnlyList<CacheSlotRange> slotRanges, bool hasReplica, IReadOnlyList<EndPoint> replicas, string? probeKey) =>
        Volatile.Write(ref _layout, new Layout(serverAddress, string.Join(",", slotRanges), slotRanges, hasReplica, replicas, probeKey ?? ProbeKey));

    internal void Retire() => Volatile.Write(ref _retired, true);

    internal void PauseReplicaReads(long until) => Volatile.Write(ref _replicaReadsPausedUntil, until);

    internal void ResumeReplicaReads() => Volatile.Write(ref _replicaReadsPausedUntil, 0);

    /// <summary>Takes the one watch for a replica taking over while the window is open; false when one runs already.</summary>
    internal bool TryStartTakeoverWatch() => Interlocked.CompareExchange(ref _watchedForTakeover, 1, 0) == 0;

    internal void EndTakeoverWatch() => Volatile.Write(ref _watchedForTakeover, 0);

    private sealed record Layout(string ServerAddress, string Slots, IReadOnlyList<CacheSlotRange> SlotRanges, bool HasReplica, IReadOnlyList<EndPoint> Replicas, string ProbeKey);
}
