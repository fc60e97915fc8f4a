using System.Net;
using System.Text;
using Resilient.Caching.Outages;
using Resilient.Caching.Storage;
using StackExchange.Redis;

namespace Resilient.Caching.Topology;

/// <summary>
/// Which unavailable window a key belongs to. A single server or a Sentinel deployment has one window for every key
/// (<see cref="Deployment"/>); a Redis Cluster has one per primary (<see cref="Shards"/>), so that one primary's failure
/// keeps only its own slots off Redis. The cluster's layout is read from the client's view of the topology when the
/// connection is made and whenever the client reports a change.
/// </summary>
/// <remarks>
/// <see cref="Deployment"/> still serves a cluster for what belongs to no single primary: waiting for a connection, a
/// PING, a tag eviction. The hot path asks <see cref="AnyShardOut"/> (one volatile read) before it hashes a key.
/// </remarks>
internal sealed class ShardMap
{
    private const string ProbeKeySuffix = "__resilient_caching_probe";
    private const ushort NoShard = ushort.MaxValue;

    private readonly Func<Action<bool>, WindowController> _newWindow;
    private readonly StoredKeys _keys;
    private readonly Lock _lock = new();
    private Layout _layout = new([], null);
    private int _shardsOut;
    private int _replicated;

    /// <param name="keys">Where the stock components keep their keys (the prefixes a key is hashed with).</param>
    /// <param name="deployment">The window of every key that belongs to no shard (all of them outside a cluster).</param>
    /// <param name="newWindow">Creates a shard's window, given what to call when it stops or starts being available.</param>
    public ShardMap(StoredKeys keys, WindowController deployment, Func<Action<bool>, WindowController> newWindow)
    {
        _keys = keys;
        _newWindow = newWindow;
        Deployment = new Shard(-1, deployment, keys.CacheInstanceName + ProbeKeySuffix, isDeployment: true);
    }

    /// <summary>Gets the window of the whole deployment: every key outside a cluster, and what belongs to no single primary in one.</summary>
    public Shard Deployment { get; }

    /// <summary>Gets a value indicating whether Redis is a cluster whose primaries have windows of their own.</summary>
    public bool IsCluster => Volatile.Read(ref _layout).Owner is not null;

    /// <summary>Gets a value indicating whether some shard's window is open or its failure is being checked (one volatile read).</summary>
    public bool AnyShardOut => Volatile.Read(ref _shardsOut) != 0;

    /// <summary>
    /// Gets a value indicating whether Redis has replicas or more than one server (Sentinel, Cluster, a list of
    /// endpoints): the client fails over between them by itself, and a failure of one server is no reason to drop
    /// the connections to the others.
    /// </summary>
    public bool IsReplicated => Volatile.Read(ref _replicated) != 0;

    /// <summary>Gets the shards of a cluster, by first slot; empty otherwise.</summary>
    public IReadOnlyList<Shard> Shards => Volatile.Read(ref _layout).Shards;

    /// <summary>The shard whose primary holds <paramref name="key"/>; null outside a cluster, and for what has no single key (a tag).</summary>
    public Shard? ShardOf(KeyKind kind, string? key)
    {
        var layout = Volatile.Read(ref _layout);
        if (layout.Owner is null || key is null || kind == KeyKind.OutputCacheTag)
        {
            return null;
        }

        var index = layout.Owner[HashSlot.Of(_keys.PrefixOf(kind), key)];
        return index == NoShard ? null : layout.Shards[index];
    }

    /// <summary>Whether a record belongs to <paramref name="shard"/> (for the shard's replay after its outage).</summary>
    public bool Holds(Shard shard, KeyKind kind, string key) => ReferenceEquals(ShardOf(kind, key), shard);

    /// <summary>Reads the layout from the client's view of the topology.</summary>
    public void Refresh(IConnectionMultiplexer multiplexer)
    {
        IServer[] servers;
        try
        {
            servers = multiplexer.GetServers();
        }
        catch (ObjectDisposedException)
        {
            return;
        }

        Volatile.Write(ref _replicated, servers.Length > 1 || servers.Any(static s => s.IsReplica) ? 1 : 0);
        var configuration = servers.FirstOrDefault(static s => s.ServerType == ServerType.Cluster && s.IsConnected)?.ClusterConfiguration;
        if (configuration is null)
        {
            return;
        }

        Apply([.. configuration.Nodes
            .Where(static n => !n.IsReplica && n.Slots.Count > 0)
            .Select(static n => new Primary(Format(n.EndPoint), [.. n.Slots], n.Children.Count > 0, [.. n.Children.Select(static c => c.EndPoint).OfType<EndPoint>()]))]);
    }

    /// <summary>
    /// Takes a cluster's primaries as the shards (kept by first slot, so a failover keeps each shard's window). A shard
    /// whose slots no primary claims stays as it was: in the middle of a failover the failed primary may no longer be
    /// listed while its replica is not promoted yet, and the shard's window must outlive that moment.
    /// </summary>
    internal void Apply(IReadOnlyList<Primary> primaries)
    {
        if (primaries.Count == 0)
        {
            return;
        }

        lock (_lock)
        {
            var old = _layout;
            var claimed = new bool[HashSlot.Count];
            foreach (var range in primaries.SelectMany(static p => p.Slots))
            {
                claimed.AsSpan(range.From, range.To - range.From + 1).Fill(true);
            }

            var next = new List<(Shard Shard, IReadOnlyList<CacheSlotRange> Ranges)>();
            foreach (var primary in primaries)
            {
                var first = primary.Slots.Min(static r => r.From);
                var shard = Array.Find(old.Shards, s => s.FirstSlot == first) ?? NewShard(first, primary.Slots);
                var ranges = Array.AsReadOnly(primary.Slots.Select(static r => new CacheSlotRange(r.From, r.To)).OrderBy(static r => r.From).ToArray());

                // Resharded: the probe's key must lie in the slots the shard serves now.
                var probeKey = shard.Slots.Length != 0 && shard.Slots != string.Join(",", ranges) ? ProbeKeyIn(primary.Slots) : null;
                shard.Relayout(primary.Address, ranges, primary.HasReplica, primary.Replicas ?? [], probeKey);
                next.Add((shard, ranges));
            }

            foreach (var unlisted in old.Shards.Where(s => next.TrueForAll(n => n.Shard != s)))
            {
                if (unlisted.SlotRanges.Count > 0 && unlisted.SlotRanges.All(r => !claimed.AsSpan(r.From, r.Count).Contains(true)))
                {
                    next.Add((unlisted, unlisted.SlotRanges));
                    continue;
                }

                // Its slots moved to other primaries (a resharding): it can no longer be probed, so it no longer counts
                // as out. Its records are applied by the shards that now serve its keys.
                unlisted.Retire();
                if (!unlisted.Controller.IsAvailable)
                {
                    Interlocked.Decrement(ref _shardsOut);
                }
            }

            next.Sort(static (a, b) => a.Shard.FirstSlot.CompareTo(b.Shard.FirstSlot));
            var owner = new ushort[HashSlot.Count];
            Array.Fill(owner, NoShard);
            for (var i = 0; i < next.Count; i++)
            {
                foreach (var range in next[i].Ranges)
                {
                    owner.AsSpan(range.From, range.Count).Fill((ushort)i);
                }
            }

            Volatile.Write(ref _layout, new Layout([.. next.Select(static n => n.Shard)], owner));
        }
    }

    /// <summary>A shard's window, counted in <see cref="AnyShardOut"/> while it is not available.</summary>
    private Shard NewShard(int first, IReadOnlyList<SlotRange> slots)
    {
        Shard? shard = null;
        var controller = _newWindow(available =>
        {
            if (shard is { Retired: false })
            {
                Interlocked.Add(ref _shardsOut, available ? -1 : 1);
            }
        });
        shard = new Shard(first, controller, ProbeKeyIn(slots));
        return shard;
    }

    /// <summary>
    /// A key under the cache's prefix in one of <paramref name="slots"/>: the prefix and the probe key's name, and a
    /// hash tag chosen to land there. With a hash tag in the prefix every key lands in one slot, the probe's too.
    /// </summary>
    private string ProbeKeyIn(IReadOnlyList<SlotRange> slots)
    {
        var name = _keys.CacheInstanceName + ProbeKeySuffix;
        if (HashSlot.Of(Encoding.UTF8.GetBytes(name + "{0}")) == HashSlot.Of(Encoding.UTF8.GetBytes(name + "{1}")))
        {
            // The prefix carries the hash tag.
            return name;
        }

        for (var tag = 0; tag < 1_000_000; tag++)
        {
            var key = $"{name}{{{tag}}}";
            var slot = HashSlot.Of(Encoding.UTF8.GetBytes(key));
            if (slots.Any(r => slot >= r.From && slot <= r.To))
            {
                return key;
            }
        }

        return name;
    }

    /// <summary>An endpoint as <c>host:port</c>, as the shards are named.</summary>
    public static string Format(EndPoint? endPoint) => endPoint switch
    {
        DnsEndPoint dns => $"{dns.Host}:{dns.Port}",
        IPEndPoint ip => ip.ToString(),
        null => "unknown",
        _ => endPoint.ToString() ?? "unknown",
    };

    private sealed record Layout(Shard[] Shards, ushort[]? Owner);

    /// <summary>A cluster primary as the client reports it: where it is, its slots, whether it has a replica, and where its replicas are.</summary>
    internal sealed record Primary(string Address, IReadOnlyList<SlotRange> Slots, bool HasReplica, IReadOnlyList<EndPoint>? Replicas = null);
}
