using System.Diagnostics;
using System.Globalization;

namespace Resilient.Caching.IntegrationTests.Infrastructure;

/// <summary>Settings for one <see cref="RedisSentinel"/>.</summary>
public sealed record RedisSentinelOptions
{
    /// <summary>The service (master) name the sentinels monitor and clients ask for (<c>serviceName=</c>).</summary>
    public string ServiceName { get; init; } = "rctest";

    /// <summary><c>down-after-milliseconds</c>: how long the primary may not answer before a sentinel deems it down.</summary>
    public TimeSpan DownAfter { get; init; } = TimeSpan.FromMilliseconds(1000);

    /// <summary><c>failover-timeout</c>: bounds one failover attempt (and the wait before another).</summary>
    public TimeSpan FailoverTimeout { get; init; } = TimeSpan.FromSeconds(3);
}

/// <summary>
/// A real Sentinel deployment: one primary, one replica and three sentinels (quorum 2), each a redis-server on a free
/// loopback port in its own temp dir (a sentinel is <c>redis-server sentinel.conf --sentinel</c>). The primary can be
/// killed or frozen, or switched over with <c>SENTINEL FAILOVER</c>; <see cref="WaitForPromotionAsync"/> times the
/// switch as the sentinels report it. Always use with <c>await using</c>: dispose kills every process (by its pid)
/// and deletes its directory; a crashed run's processes are cleaned up by the next run (see <see cref="RedisServer"/>).
/// </summary>
public sealed class RedisSentinel : IAsyncDisposable
{
    private const int SentinelCount = 3;
    private static readonly TimeSpan Poll = TimeSpan.FromMilliseconds(20);
    private static readonly TimeSpan ProbeTimeout = TimeSpan.FromSeconds(1);

    private readonly RedisSentinelOptions _options;
    private readonly List<RedisServer> _dataNodes = [];
    private readonly List<RedisServer> _sentinels = [];
    private bool _disposed;

    private RedisSentinel(RedisSentinelOptions options) => _options = options;

    /// <summary>The service name clients ask the sentinels for.</summary>
    public string ServiceName => _options.ServiceName;

    /// <summary>The primary as started, then the replica (their roles change with failovers).</summary>
    public IReadOnlyList<RedisServer> DataNodes => _dataNodes;

    /// <summary>The three sentinels.</summary>
    public IReadOnlyList<RedisServer> Sentinels => _sentinels;

    /// <summary>StackExchange.Redis configuration: the sentinels' endpoints and <c>serviceName=</c>.</summary>
    public string ConnectionString =>
        string.Join(',', _sentinels.Select(s => $"{s.Host}:{s.Port}")) + $",serviceName={ServiceName}";

    /// <summary>Starts the primary, its replica (in sync) and the sentinels, and returns once every sentinel knows all of them.</summary>
    public static async Task<RedisSentinel> StartAsync(RedisSentinelOptions? options = null, CancellationToken cancellationToken = default)
    {
        var deployment = new RedisSentinel(options ?? new RedisSentinelOptions());
        try
        {
            await deployment.StartNodesAsync(cancellationToken);
            return deployment;
        }
        catch
        {
            await deployment.DisposeAsync();
            throw;
        }
    }

    /// <summary>The data node the first answering sentinel names as primary (<c>SENTINEL get-master-addr-by-name</c>).</summary>
    public async Task<RedisServer> GetPrimaryAsync()
    {
        foreach (var sentinel in _sentinels)
        {
            if (await TryGetPrimaryPortAsync(sentinel) is { } port)
            {
                return _dataNodes.Single(n => n.Port == port);
            }
        }

        throw new InvalidOperationException("No sentinel named a primary.");
    }

    /// <summary>A planned switch: <c>SENTINEL FAILOVER</c> on one sentinel. Returns once it is accepted.</summary>
    public async Task FailoverAsync()
    {
        var reply = await _sentinels[0].ExecuteAsync("SENTINEL", "FAILOVER", ServiceName);
        if (!reply.StartsWith("+OK", StringComparison.Ordinal))
        {
            throw new InvalidOperationException($"SENTINEL FAILOVER failed: {reply}");
        }
    }

    /// <summary>
    /// Waits until a sentinel names another data node than <paramref name="oldPrimary"/> as primary (After), then
    /// until every sentinel does and that node says it is a primary (SettledAfter). Times are measured from
    /// <paramref name="faultAt"/> (a <see cref="Stopwatch.GetTimestamp"/> taken when the fault was injected).
    /// </summary>
    public async Task<Promotion<RedisServer>> WaitForPromotionAsync(RedisServer oldPrimary, long faultAt, TimeSpan timeout)
    {
        var deadline = Stopwatch.StartNew();
        int? newPort = null;
        while (newPort is null)
        {
            foreach (var sentinel in _sentinels)
            {
                if (await TryGetPrimaryPortAsync(sentinel) is { } port && port != oldPrimary.Port)
                {
                    newPort = port;
                    break;
                }
            }

            if (newPort is null)
            {
                FixtureWaits.ThrowIfLate(deadline, timeout, $"no sentinel switched away from {oldPrimary.Port}");
                await Task.Delay(Poll);
            }
        }

        var after = Stopwatch.GetElapsedTime(faultAt);
        var promoted = _dataNodes.Single(n => n.Port == newPort);
        while (!await AllSentinelsNameAsync(newPort.Value) || !await SaysPrimaryAsync(promoted))
        {
            FixtureWaits.ThrowIfLate(deadline, timeout, $"the sentinels did not all settle on {newPort}");
            await Task.Delay(Poll);
        }

        return new Promotion<RedisServer>(promoted, after, Stopwatch.GetElapsedTime(faultAt));
    }

    /// <summary>
    /// Waits until every sentinel names the same primary, sees it up, knows the two other sentinels and (with
    /// <paramref name="replicas"/> &gt; 0) sees that many replicas up and in sync. After a failover a sentinel learns
    /// a replica's link state from its INFO, which it reads every 10 s: allow for that.
    /// </summary>
    public async Task WaitForHealthyAsync(TimeSpan timeout, int replicas = 1)
    {
        var deadline = Stopwatch.StartNew();
        while (true)
        {
            var state = await DescribeUnhealthyAsync(replicas);
            if (state is null)
            {
                return;
            }

            FixtureWaits.ThrowIfLate(deadline, timeout, $"the sentinels did not become healthy ({state})");
            await Task.Delay(Poll * 2.5);
        }
    }

    /// <summary>Kills every process and deletes its directory. Idempotent.</summary>
    public async ValueTask DisposeAsync()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        foreach (var server in _sentinels.Concat(_dataNodes))
        {
            await server.DisposeAsync();
        }
    }

    private async Task StartNodesAsync(CancellationToken cancellationToken)
    {
        // Full syncs at once (Redis 7 waits 5 s for more replicas by default).
        string[] replication = ["--repl-diskless-sync-delay", "0"];
        var primary = await StartAsync(new RedisServerOptions { ExtraArgs = replication }, _dataNodes, cancellationToken);
        var replica = await StartAsync(
            new RedisServerOptions { ReplicaOfHost = primary.Host, ReplicaOfPort = primary.Port, ExtraArgs = replication }, _dataNodes, cancellationToken);

        // The replica is in sync before the sentinels start, so their first INFO of the primary already lists it
        // (otherwise they learn of it only at the next INFO, 10 s later).
        var synced = Stopwatch.StartNew();
        while (!await LinkUpAsync(replica))
        {
            FixtureWaits.ThrowIfLate(synced, TimeSpan.FromSeconds(15), "the replica did not sync");
            await Task.Delay(Poll * 2.5, cancellationToken);
        }

        var port = primary.Port.ToString(CultureInfo.InvariantCulture);
        for (var i = 0; i < SentinelCount; i++)
        {
            await StartAsync(
                new RedisServerOptions
                {
                    // Sentinel rewrites this file with what it learns; it lives in the sentinel's own temp dir.
                    ConfigFileLines =
                    [
                        $"sentinel monitor {ServiceName} {primary.Host} {port} 2",
                        $"sentinel down-after-milliseconds {ServiceName} {(int)_options.DownAfter.TotalMilliseconds}",
                        $"sentinel failover-timeout {ServiceName} {(int)_options.FailoverTimeout.TotalMilliseconds}",
                    ],
                    ExtraArgs = ["--sentinel"],
                },
                _sentinels,
                cancellationToken);
        }

        await WaitForHealthyAsync(TimeSpan.FromSeconds(30));
    }

    private static async Task<RedisServer> StartAsync(RedisServerOptions options, List<RedisServer> into, CancellationToken cancellationToken)
    {
        var server = new RedisServer(options);
        into.Add(server); // Disposed with the deployment even if it fails to start.
        await server.StartAsync(cancellationToken);
        return server;
    }

    private async Task<string?> DescribeUnhealthyAsync(int replicas)
    {
        var primaries = new HashSet<int>();
        foreach (var sentinel in _sentinels)
        {
            if (await TryAsync(sentinel, "SENTINEL", "MASTER", ServiceName) is not { } reply)
            {
                return $"sentinel {sentinel.Port} does not answer";
            }

            var master = RespReply.Pairs(RespReply.Parse(reply));
            if (master["flags"] != "master" || master["num-other-sentinels"] != (SentinelCount - 1).ToString(CultureInfo.InvariantCulture))
            {
                return $"sentinel {sentinel.Port}: flags {master["flags"]}, {master["num-other-sentinels"]} other sentinels";
            }

            if (replicas > 0)
            {
                var known = RespReply.Array(await TryAsync(sentinel, "SENTINEL", "REPLICAS", ServiceName) ?? "*0\r\n").Select(RespReply.Pairs).ToList();
                if (known.Count(r => r["flags"] == "slave" && r["master-link-status"] == "ok") < replicas)
                {
                    return $"sentinel {sentinel.Port} sees replicas: " + string.Join(", ", known.Select(r => $"{r["port"]} {r["flags"]} link {r["master-link-status"]}"));
                }
            }

            primaries.Add(int.Parse(master["port"], CultureInfo.InvariantCulture));
        }

        return primaries.Count == 1 ? null : "sentinels name different primaries";
    }

    private async Task<bool> AllSentinelsNameAsync(int port)
    {
        foreach (var sentinel in _sentinels)
        {
            if (await TryGetPrimaryPortAsync(sentinel) != port)
            {
                return false;
            }
        }

        return true;
    }

    private async Task<int?> TryGetPrimaryPortAsync(RedisServer sentinel) =>
        await TryAsync(sentinel, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", ServiceName) is { } reply
        && RespReply.Parse(reply) is IReadOnlyList<object?> { Count: 2 } address
            ? int.Parse((string)address[1]!, CultureInfo.InvariantCulture)
            : null;

    private static async Task<bool> SaysPrimaryAsync(RedisServer node) =>
        await TryAsync(node, "ROLE") is { } role && RespReply.Array(role) is [string and "master", ..];

    private static async Task<bool> LinkUpAsync(RedisServer replica) =>
        await TryAsync(replica, "INFO", "replication") is { } info && RespReply.Info(info).GetValueOrDefault("master_link_status") == "up";

    private static Task<string?> TryAsync(RedisServer server, params string[] command) => server.TryExecuteAsync(ProbeTimeout, command);
}
