using System.Diagnostics;
using System.Globalization;
using System.Text;

namespace Resilient.Caching.IntegrationTests.Infrastructure;

/// <summary>Settings for one <see cref="RedisCluster"/>.</summary>
public sealed record RedisClusterOptions
{
    /// <summary>
    /// <c>cluster-require-full-coverage</c>: with yes (Redis' default) every node refuses every key while any slot is
    /// uncovered (a dead primary not yet replaced); with no the healthy shards keep serving their slots.
    /// </summary>
    public bool RequireFullCoverage { get; init; } = true;

    /// <summary>
    /// <c>cluster-node-timeout</c>: how long a node may be unreachable before it is failing. Short, so a killed
    /// primary's replica takes over within a few seconds.
    /// </summary>
    public TimeSpan NodeTimeout { get; init; } = TimeSpan.FromMilliseconds(1000);
}

/// <summary>One node of a <see cref="RedisCluster"/>: a <see cref="RedisServer"/> and its cluster identity.</summary>
public sealed class ClusterNode
{
    internal ClusterNode(RedisServer server, int busPort)
    {
        Server = server;
        BusPort = busPort;
    }

    /// <summary>The process (kill, pause, restart, commands).</summary>
    public RedisServer Server { get; }

    /// <summary>The node id (<c>CLUSTER MYID</c>); it survives a restart (kept in the node's cluster-config-file).</summary>
    public string Id { get; internal set; } = string.Empty;

    /// <summary>Host clients connect to.</summary>
    public string Host => Server.Host;

    /// <summary>Client port.</summary>
    public int Port => Server.Port;

    /// <summary>Cluster bus port (<c>cluster-port</c>), chosen free too rather than the default port + 10000.</summary>
    public int BusPort { get; }

    /// <summary>"host:port", as StackExchange.Redis and CLUSTER NODES write it.</summary>
    public string EndPoint => $"{Host}:{Port}";

    /// <summary>True while the process is frozen by <see cref="Pause"/>.</summary>
    public bool IsPaused { get; private set; }

    /// <summary>True while the process runs (also when paused).</summary>
    public bool IsRunning => Server.ProcessId is not null;

    /// <summary>SIGKILL, as a crash: the other nodes notice after the node timeout.</summary>
    public void Kill() => Server.Kill();

    /// <summary>SIGSTOP: the node hangs (connections accepted, nothing answered) until <see cref="Resume"/>.</summary>
    public void Pause()
    {
        Server.Pause();
        IsPaused = true;
    }

    /// <summary>SIGCONT.</summary>
    public void Resume()
    {
        Server.Resume();
        IsPaused = false;
    }

    /// <summary>
    /// Starts a killed node again on the same ports with its cluster-config-file, so it rejoins with its id (a
    /// former primary whose replica took over comes back as that replica's replica). Its data is gone.
    /// </summary>
    public Task RestartAsync(CancellationToken cancellationToken = default)
    {
        IsPaused = false;
        return Server.RestartAsync(cancellationToken);
    }

    /// <inheritdoc />
    public override string ToString() => $"{EndPoint} ({(Id.Length >= 8 ? Id[..8] : Id)})";
}

/// <summary>A range of hash slots, both ends included.</summary>
public readonly record struct SlotRange(int Start, int End)
{
    /// <summary>True if <paramref name="slot"/> is in the range.</summary>
    public bool Contains(int slot) => slot >= Start && slot <= End;

    /// <inheritdoc />
    public override string ToString() => Start == End ? Start.ToString(CultureInfo.InvariantCulture) : $"{Start}-{End}";
}

/// <summary>One line of CLUSTER NODES: how one node sees another (or itself).</summary>
public sealed record ClusterNodeView(string Id, int Port, IReadOnlySet<string> Flags, string? PrimaryId, bool Connected, IReadOnlyList<SlotRange> Slots)
{
    /// <summary>Flagged master.</summary>
    public bool IsPrimary => Flags.Contains("master");

    /// <summary>Flagged failing (<c>fail</c>) or suspected (<c>fail?</c>).</summary>
    public bool IsFailing => Flags.Contains("fail") || Flags.Contains("fail?");

    /// <summary>The line describes the node that answered.</summary>
    public bool IsMyself => Flags.Contains("myself");
}

/// <summary>The cluster as one node sees it (its CLUSTER NODES reply).</summary>
public sealed class ClusterTopology
{
    internal ClusterTopology(IReadOnlyList<ClusterNodeView> nodes) => Nodes = nodes;

    /// <summary>Every node the answering node knows.</summary>
    public IReadOnlyList<ClusterNodeView> Nodes { get; }

    /// <summary>The primaries that serve slots.</summary>
    public IEnumerable<ClusterNodeView> Primaries => Nodes.Where(n => n.IsPrimary && n.Slots.Count > 0);

    /// <summary>The primary serving <paramref name="slot"/>, or null when none does.</summary>
    public ClusterNodeView? OwnerOf(int slot) => Primaries.FirstOrDefault(n => n.Slots.Any(r => r.Contains(slot)));

    /// <summary>The replicas of the node with id <paramref name="primaryId"/>.</summary>
    public IEnumerable<ClusterNodeView> ReplicasOf(string primaryId) => Nodes.Where(n => n.PrimaryId == primaryId);

    /// <summary>
    /// Every node not flagged failing with its role, the primary it follows and its slots, for comparing two nodes'
    /// views (a node that restarted or was just switched over may still see itself otherwise than the others do).
    /// </summary>
    public string Shape => string.Join(' ', Nodes.Where(n => !n.IsFailing)
        .Select(n => $"{n.Id}:{(n.IsPrimary ? "primary" : "replica>" + n.PrimaryId)}:{string.Join(',', n.Slots)}")
        .Order(StringComparer.Ordinal));

    /// <summary>Number of slots served by a primary not flagged failing.</summary>
    public int CoveredSlots => Primaries.Where(n => !n.IsFailing).Sum(n => n.Slots.Sum(r => r.End - r.Start + 1));

    internal static ClusterTopology Parse(string text)
    {
        List<ClusterNodeView> nodes = [];
        foreach (var line in text.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            // <id> <ip:port@cport[,hostname]> <flags> <primary|-> <ping-sent> <pong-recv> <epoch> <link-state> <slot>...
            var fields = line.Split(' ');
            var address = fields[1];
            var colon = address.LastIndexOf(':', address.IndexOf('@', StringComparison.Ordinal));
            var port = int.Parse(address[(colon + 1)..address.IndexOf('@', StringComparison.Ordinal)], CultureInfo.InvariantCulture);
            var slots = fields.Skip(8)
                .Where(f => !f.StartsWith('[')) // Slots being migrated or imported.
                .Select(f => f.Split('-') is [var start, var end]
                    ? new SlotRange(int.Parse(start, CultureInfo.InvariantCulture), int.Parse(end, CultureInfo.InvariantCulture))
                    : new SlotRange(int.Parse(f, CultureInfo.InvariantCulture), int.Parse(f, CultureInfo.InvariantCulture)))
                .ToList();
            nodes.Add(new ClusterNodeView(
                fields[0], port, fields[2].Split(',').ToHashSet(StringComparer.Ordinal), fields[3] == "-" ? null : fields[3], fields[7] == "connected", slots));
        }

        return new ClusterTopology(nodes);
    }
}

/// <summary>
/// A real Redis Cluster of 3 primaries and 3 replicas (Debian's redis-server on free loopback ports, each node in its
/// own temp dir with its own cluster-config-file, no persistence), formed with <c>redis-cli --cluster create</c>.
/// Nodes can be killed, frozen, restarted and failed over; helpers tell which primary serves a key and make keys
/// that land on a chosen primary. Always use with <c>await using</c>: dispose kills every node (by its pid) and
/// deletes its directory; a crashed run's nodes are cleaned up by the next run (see <see cref="RedisServer"/>).
/// </summary>
public sealed class RedisCluster : IAsyncDisposable
{
    /// <summary>Hash slots of a Redis Cluster.</summary>
    public const int SlotCount = 16384;

    private const int PrimaryCount = 3;
    private static readonly TimeSpan Poll = TimeSpan.FromMilliseconds(20);
    private static readonly TimeSpan ProbeTimeout = TimeSpan.FromSeconds(1);

    private readonly RedisClusterOptions _options;
    private readonly List<ClusterNode> _nodes = [];
    private bool _disposed;

    private RedisCluster(RedisClusterOptions options) => _options = options;

    /// <summary>All six nodes, the three primaries as formed first (their roles change with failovers).</summary>
    public IReadOnlyList<ClusterNode> Nodes => _nodes;

    /// <summary>The settings the cluster runs with.</summary>
    public RedisClusterOptions Options => _options;

    /// <summary>
    /// StackExchange.Redis configuration: the endpoints of the three primaries as formed (the client discovers the
    /// replicas, and later changes, from the cluster itself).
    /// </summary>
    public string ConnectionString { get; private set; } = string.Empty;

    /// <summary>Starts six nodes, forms the cluster and returns once it is healthy (see <see cref="WaitForHealthyAsync"/>).</summary>
    public static async Task<RedisCluster> StartAsync(RedisClusterOptions? options = null, CancellationToken cancellationToken = default)
    {
        var cluster = new RedisCluster(options ?? new RedisClusterOptions());
        try
        {
            await cluster.FormAsync(cancellationToken);
            return cluster;
        }
        catch
        {
            await cluster.DisposeAsync();
            throw;
        }
    }

    /// <summary>The hash slot of a key (CRC16 of the key, or of its <c>{hash tag}</c>, modulo 16384), as Redis computes it.</summary>
    public static int HashSlot(string key)
    {
        var bytes = Encoding.UTF8.GetBytes(key);
        var hashed = bytes.AsSpan();
        var open = hashed.IndexOf((byte)'{');
        if (open >= 0)
        {
            var close = hashed[(open + 1)..].IndexOf((byte)'}');
            if (close > 0)
            {
                hashed = hashed.Slice(open + 1, close);
            }
        }

        // CRC16-CCITT (XMODEM): polynomial 0x1021, initial value 0.
        ushort crc = 0;
        foreach (var b in hashed)
        {
            crc ^= (ushort)(b << 8);
            for (var bit = 0; bit < 8; bit++)
            {
                crc = (crc & 0x8000) != 0 ? (ushort)((crc << 1) ^ 0x1021) : (ushort)(crc << 1);
            }
        }

        return crc % SlotCount;
    }

    /// <summary>The node with this id.</summary>
    public ClusterNode NodeWithId(string id) => _nodes.Single(n => n.Id == id);

    /// <summary>The cluster as the first running, answering node sees it.</summary>
    public async Task<ClusterTopology> GetTopologyAsync()
    {
        foreach (var node in _nodes.Where(n => n.IsRunning && !n.IsPaused))
        {
            if (await TryGetTopologyAsync(node) is { } topology)
            {
                return topology;
            }
        }

        throw new InvalidOperationException("No cluster node answered CLUSTER NODES.");
    }

    /// <summary>The primaries serving slots now, in slot order.</summary>
    public async Task<IReadOnlyList<ClusterNode>> GetPrimariesAsync()
    {
        var topology = await GetTopologyAsync();
        return [.. topology.Primaries.Where(n => !n.IsFailing).OrderBy(n => n.Slots[0].Start).Select(n => NodeWithId(n.Id))];
    }

    /// <summary>The replica of <paramref name="primary"/> (each primary has one).</summary>
    public async Task<ClusterNode> GetReplicaOfAsync(ClusterNode primary)
    {
        var topology = await GetTopologyAsync();
        return NodeWithId(topology.ReplicasOf(primary.Id).Single().Id);
    }

    /// <summary>The primary that serves <paramref name="redisKey"/> (the key as stored: with the InstanceName prefix), asking the cluster (CLUSTER KEYSLOT).</summary>
    public async Task<ClusterNode> GetPrimaryForKeyAsync(string redisKey)
    {
        var node = _nodes.First(n => n.IsRunning && !n.IsPaused);
        var reply = await node.Server.ExecuteAsync(ProbeTimeout, "CLUSTER", "KEYSLOT", redisKey);
        var slot = (int)(long)RespReply.Parse(reply)!;
        var owner = (await GetTopologyAsync()).OwnerOf(slot) ?? throw new InvalidOperationException($"No primary serves slot {slot}.");
        return NodeWithId(owner.Id);
    }

    /// <summary>
    /// <paramref name="count"/> cache keys (<paramref name="prefix"/>-0, -1, … those that fit) that land on
    /// <paramref name="primary"/> once the cache stores them as <paramref name="instanceName"/> + key, as the stock
    /// RedisCache does (a HASH under that name).
    /// </summary>
    public async Task<IReadOnlyList<string>> KeysOnAsync(ClusterNode primary, int count, string instanceName = "", string prefix = "key")
    {
        var topology = await GetTopologyAsync();
        var slots = topology.Nodes.Single(n => n.Id == primary.Id).Slots;
        if (slots.Count == 0)
        {
            throw new InvalidOperationException($"{primary} serves no slots.");
        }

        List<string> keys = [];
        for (var i = 0; keys.Count < count; i++)
        {
            var key = $"{prefix}-{i.ToString(CultureInfo.InvariantCulture)}";
            var slot = HashSlot(instanceName + key);
            if (slots.Any(r => r.Contains(slot)))
            {
                keys.Add(key);
            }
        }

        return keys;
    }

    /// <summary>
    /// A planned failover: <c>CLUSTER FAILOVER</c> (optionally FORCE or TAKEOVER) on <paramref name="replica"/>, which
    /// takes over from its primary without losing writes. Returns once the command is accepted; the switch follows
    /// (see <see cref="WaitForPromotionAsync"/>).
    /// </summary>
    public static async Task FailoverAsync(ClusterNode replica, string? mode = null)
    {
        string[] command = mode is null ? ["CLUSTER", "FAILOVER"] : ["CLUSTER", "FAILOVER", mode];
        var reply = await replica.Server.ExecuteAsync(command);
        if (!reply.StartsWith("+OK", StringComparison.Ordinal))
        {
            throw new InvalidOperationException($"CLUSTER FAILOVER on {replica} failed: {reply}");
        }
    }

    /// <summary>
    /// Waits until <paramref name="replica"/> is promoted (it says so itself, ROLE) and every running node agrees that
    /// it serves slots, with the cluster state ok everywhere. Times are measured from <paramref name="faultAt"/> (a
    /// <see cref="Stopwatch.GetTimestamp"/> taken when the fault was injected). Ask <see cref="GetReplicaOfAsync"/>
    /// which replica that is before the fault: a planned failover can be over before this is called.
    /// </summary>
    public async Task<Promotion<ClusterNode>> WaitForPromotionAsync(ClusterNode replica, long faultAt, TimeSpan timeout)
    {
        var deadline = Stopwatch.StartNew();
        while (await TryAsync(replica, "ROLE") is not { } role || RespReply.Array(role) is not [string and "master", ..])
        {
            FixtureWaits.ThrowIfLate(deadline, timeout, $"{replica} was not promoted");
            await Task.Delay(Poll);
        }

        var after = Stopwatch.GetElapsedTime(faultAt);
        await WaitForSettledAsync(
            views => views.All(v => v.Nodes.Any(n => n.Id == replica.Id && n.IsPrimary && n.Slots.Count > 0)),
            timeout - deadline.Elapsed,
            $"the cluster did not settle on {replica} as primary");
        return new Promotion<ClusterNode>(replica, after, Stopwatch.GetElapsedTime(faultAt));
    }

    /// <summary>
    /// Waits until every running node reports cluster_state:ok with all 16384 slots served, every running node
    /// sees the same primaries serving the same slots and the same replicas following them, none of them is flagged failing, and every replica's link to
    /// its primary is up (so it can take over, and holds the data).
    /// </summary>
    public Task WaitForHealthyAsync(TimeSpan timeout) =>
        WaitForSettledAsync(
            views => views.All(v => v.Nodes.Where(n => Running(n.Id)).All(n => !n.IsFailing && (n.IsMyself || n.Connected))),
            timeout,
            "the cluster did not become healthy",
            requireReplicaLinks: true);

    /// <summary>Kills every node and deletes its directory. Idempotent.</summary>
    public async ValueTask DisposeAsync()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        foreach (var node in _nodes)
        {
            await node.Server.DisposeAsync();
        }
    }

    private bool Running(string id) => _nodes.FirstOrDefault(n => n.Id == id) is { IsRunning: true, IsPaused: false };

    private async Task FormAsync(CancellationToken cancellationToken)
    {
        var redisCli = Shell.FindExecutable("redis-cli")
            ?? throw new InvalidOperationException("redis-cli was not found on PATH; install it with `apt-get install -y redis-tools` (Debian/Ubuntu)");

        // Started one after another: parallel starts could pick the same free port twice (one then retries anyway).
        for (var i = 0; i < 2 * PrimaryCount; i++)
        {
            _nodes.Add(await StartNodeAsync(cancellationToken));
        }

        // The first three endpoints become the primaries; redis-cli gives each a replica and waits for the join.
        await Shell.RunAsync(redisCli, ["--cluster", "create", .. _nodes.Select(n => n.EndPoint), "--cluster-replicas", "1", "--cluster-yes"]);
        foreach (var node in _nodes)
        {
            node.Id = RespReply.Text(await node.Server.ExecuteAsync("CLUSTER", "MYID"));
        }

        await WaitForHealthyAsync(TimeSpan.FromSeconds(30));
        ConnectionString = string.Join(',', (await GetPrimariesAsync()).Select(n => n.EndPoint));
    }

    private async Task<ClusterNode> StartNodeAsync(CancellationToken cancellationToken)
    {
        // The bus port is picked free too (port + 10000 may be taken or beyond 65535); if it is taken before the node
        // binds it, the start fails and is retried with another.
        for (var attempt = 1; ; attempt++)
        {
            var busPort = RedisServer.FindFreePort("127.0.0.1");
            var server = new RedisServer(new RedisServerOptions
            {
                ExtraArgs =
                [
                    "--cluster-enabled", "yes",
                    "--cluster-config-file", "nodes.conf", // Relative to --dir: the node's own temp dir.
                    "--cluster-port", busPort.ToString(CultureInfo.InvariantCulture),
                    "--cluster-node-timeout", ((int)_options.NodeTimeout.TotalMilliseconds).ToString(CultureInfo.InvariantCulture),
                    "--cluster-require-full-coverage", _options.RequireFullCoverage ? "yes" : "no",

                    // Topology changes only when a test makes one.
                    "--cluster-allow-replica-migration", "no",

                    // Full syncs at once (Redis 7 waits 5 s for more replicas by default).
                    "--repl-diskless-sync-delay", "0",
                ],
            });
            try
            {
                await server.StartAsync(cancellationToken);
                return new ClusterNode(server, busPort);
            }
            catch (InvalidOperationException) when (attempt < 3)
            {
                await server.DisposeAsync();
            }
            catch
            {
                await server.DisposeAsync();
                throw;
            }
        }
    }

    private async Task WaitForSettledAsync(Func<IReadOnlyList<ClusterTopology>, bool> condition, TimeSpan timeout, string what, bool requireReplicaLinks = false)
    {
        var deadline = Stopwatch.StartNew();
        var last = "nothing read yet";
        while (true)
        {
            var (settled, state) = await ReadSettledAsync(condition, requireReplicaLinks);
            if (settled)
            {
                return;
            }

            last = state;
            FixtureWaits.ThrowIfLate(deadline, timeout, $"{what}; last seen: {last}");
            await Task.Delay(Poll * 2.5);
        }
    }

    private async Task<(bool Settled, string State)> ReadSettledAsync(Func<IReadOnlyList<ClusterTopology>, bool> condition, bool requireReplicaLinks)
    {
        List<ClusterTopology> views = [];
        foreach (var node in _nodes.Where(n => n.IsRunning && !n.IsPaused))
        {
            var info = await TryAsync(node, "CLUSTER", "INFO");
            var topology = await TryGetTopologyAsync(node);
            if (info is null || topology is null)
            {
                return (false, $"{node} does not answer");
            }

            var fields = RespReply.Info(info);
            if (fields.GetValueOrDefault("cluster_state") != "ok" || fields.GetValueOrDefault("cluster_slots_ok") != SlotCount.ToString(CultureInfo.InvariantCulture))
            {
                return (false, $"{node}: cluster_state {fields.GetValueOrDefault("cluster_state")}, slots ok {fields.GetValueOrDefault("cluster_slots_ok")}");
            }

            if (requireReplicaLinks && topology.Nodes.Single(n => n.IsMyself) is { IsPrimary: false }
                && (await TryAsync(node, "INFO", "replication") is not { } replication || RespReply.Info(replication).GetValueOrDefault("master_link_status") != "up"))
            {
                return (false, $"{node}: replica link not up");
            }

            views.Add(topology);
        }

        if (views.Select(v => v.Shape).Distinct().Count() != 1 || views[0].CoveredSlots != SlotCount)
        {
            return (false, "views differ: " + string.Join(" || ", views.Select(v => v.Shape).Distinct()));
        }

        return condition(views) ? (true, "settled") : (false, string.Join(" | ", views.Select(v => string.Join(' ', v.Nodes.Select(n => $"{n.Port}:{string.Join(',', n.Flags)}")))));
    }

    private static async Task<ClusterTopology?> TryGetTopologyAsync(ClusterNode node) =>
        await TryAsync(node, "CLUSTER", "NODES") is { } reply ? ClusterTopology.Parse(RespReply.Text(reply)) : null;

    private static Task<string?> TryAsync(ClusterNode node, params string[] command) => node.Server.TryExecuteAsync(ProbeTimeout, command);
}
