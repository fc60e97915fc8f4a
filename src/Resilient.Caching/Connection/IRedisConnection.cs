namespace Resilient.Caching.Connection;

/// <summary>
/// The connection the guard uses. It knows nothing of the unavailable window: it hands out a multiplexer that
/// is connected, or says that there is none, and waits for one only when the guard asks, within the guard's bound.
/// </summary>
internal interface IRedisConnection
{
    /// <summary>Gets the current generation; an inner cache built for an older one must be rebuilt.</summary>
    int Generation { get; }

    /// <summary>Gets why the latest connection attempt is not connected, when the client said (refused credentials, for one).</summary>
    Exception? ConnectFailure { get; }

    /// <summary>Gets the database of the connected multiplexer, if there is one (the probe applies pending invalidations on it).</summary>
    StackExchange.Redis.IDatabase? Database { get; }

    /// <summary>Gets a value indicating whether a connected multiplexer is there to hand out (one volatile read).</summary>
    bool IsReady { get; }

    /// <summary>Connects if nobody is, and waits for a connected multiplexer; false after <paramref name="timeout"/> or when <paramref name="released"/> fires.</summary>
    ValueTask<bool> WaitReadyAsync(TimeSpan timeout, CancellationToken released);

    /// <summary>The synchronous <see cref="WaitReadyAsync"/>, for synchronous callers.</summary>
    bool WaitReady(TimeSpan timeout, CancellationToken released);

    /// <summary>
    /// The probe: a connected multiplexer and a short-lived write answered, all within <paramref name="budget"/>;
    /// throws what went wrong. A write, not a PING: a Redis that is loading, read-only or out of memory answers PING.
    /// </summary>
    /// <param name="budget">The time the whole probe may take.</param>
    /// <param name="key">The key it writes: one of the cache's own, on the primary being probed.</param>
    Task ProbeAsync(TimeSpan budget, StackExchange.Redis.RedisKey key);

    /// <summary>
    /// Whether one of a cluster shard's replicas took over (it says it is a primary now), each asked within
    /// <paramref name="budget"/>. When one did, the client is asked to read the topology again and the change is
    /// reported (<c>TopologyChanged</c>).
    /// </summary>
    /// <param name="budget">The longest one replica's answer is waited for.</param>
    /// <param name="replicas">The shard's replicas as the client last reported them.</param>
    Task<bool> TakenOverAsync(TimeSpan budget, IReadOnlyList<System.Net.EndPoint> replicas);

    /// <summary>
    /// Drops the current multiplexer (when it is ours), failing every command still waiting on it at once, so that
    /// the next wait connects afresh.
    /// </summary>
    /// <param name="connectAgain">
    /// Start connecting afresh at once, in the background, so that its reconnects notice Redis back early. Not after a
    /// timeout: a path that swallows packets would leave that attempt hanging until the connect timeout, and the probe
    /// would wait on it rather than connect afresh once the path heals.
    /// </param>
    void Reset(bool connectAgain = false);
}
