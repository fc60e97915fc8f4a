using System.Net;
using Resilient.Caching.Connection;
using Resilient.Caching.Diagnostics;
using Resilient.Caching.Recovery;
using Resilient.Caching.Storage;
using Resilient.Caching.Topology;
using StackExchange.Redis;

namespace Resilient.Caching.Outages;

/// <summary>
/// Everything an outage does, from the failure that starts it to the probe that ends it: tells the shard's window
/// controller, does what the transition asks (reset the connection, check a suspicion), probes, applies what the
/// outage left pending, closes the window — and tells <see cref="OutageNotifications"/> at each step. The client's own
/// signs (a primary's connection lost, a failover seen) start checks early, and an open cluster shard asks its replicas
/// whether one took over rather than wait for the client to notice.
/// </summary>
internal sealed class OutageLifecycle
{
    // How often an open cluster shard's replicas are asked whether one took over: a promotion is used within a
    // quarter of a second or so, for four ROLE commands a second to each replica of a shard that is out.
    private static readonly TimeSpan s_takeoverCheckEvery = TimeSpan.FromMilliseconds(250);

    private readonly ShardMap _shards;
    private readonly IRedisConnection _connection;
    private readonly FailureJudge _judge;
    private readonly PendingInvalidations _pending;
    private readonly OutageNotifications _notify;
    private readonly ResilientCacheMetrics _metrics;
    private readonly TimeSpan _operationTimeout;
    private readonly Func<string, CancellationToken, ValueTask>? _evictTag;
    private volatile bool _stopped;
    private int _catchingUp;

    /// <param name="shards">The windows.</param>
    /// <param name="connection">The connection a probe uses, and resets.</param>
    /// <param name="judge">What a failure means.</param>
    /// <param name="pending">What the outage left pending, applied by the probe.</param>
    /// <param name="notify">The one channel of notifications.</param>
    /// <param name="metrics">The meter (a failed catch-up replay counts as an error).</param>
    /// <param name="operationTimeout">The longest a probe may take.</param>
    /// <param name="evictTag">Evicts an output-cache tag through the stock store, for the replay; null without an output-cache store.</param>
    public OutageLifecycle(
        ShardMap shards,
        IRedisConnection connection,
        FailureJudge judge,
        PendingInvalidations pending,
        OutageNotifications notify,
        ResilientCacheMetrics metrics,
        TimeSpan operationTimeout,
        Func<string, CancellationToken, ValueTask>? evictTag)
    {
        _shards = shards;
        _connection = connection;
        _judge = judge;
        _pending = pending;
        _notify = notify;
        _metrics = metrics;
        _operationTimeout = operationTimeout;
        _evictTag = evictTag;
    }

    /// <summary>
    /// A call failed with a Redis failure: its shard's window hears of it, and whatever the transition asks is done —
    /// reset the connection (when allowed), notify once, start the probe of a suspicion.
    /// </summary>
    public void RecordFailure(CacheOperation operation, Exception exception, in FailureVerdict verdict)
    {
        if (_stopped)
        {
            // Shutting down: the connection was closed on purpose, which says nothing about Redis.
            return;
        }

        var shard = verdict.Shard;
        if (verdict.IsStall)
        {
            // The application's stall, not Redis's: no window, no reset, no probe (the error is still the last one, for
            // the health check). A write whose outcome it left unknown is invalidated right away, off the caller's path.
            shard.Controller.NoteError(exception);
            _notify.Stalled(operation, exception);
            if (_pending.Count > 0 && operation != CacheOperation.CatchUpReplay)
            {
                _ = CatchUpAsync(shard);
            }

            return;
        }

        var transition = shard.Controller.RecordFailure(exception, verdict.IsOutage, fromProbe: false);
        switch (transition)
        {
            case WindowController.Transition.Opened:
                if (verdict.MayReset)
                {
                    // Releases every command still waiting on the dead connection, and the probe connects afresh.
                    _connection.Reset(ConnectsAgainAfter(exception));
                }

                _notify.Opened(shard, operation, exception, verdict.Kind, transition);
                WatchForTakeover(shard);
                break;
            case WindowController.Transition.Suspected:
                if (verdict.MayReset)
                {
                    _connection.Reset(ConnectsAgainAfter(exception));
                }

                _notify.Suspected(shard, operation, exception);
                StartProbe(shard);
                break;
            default:
                _notify.FailedWhileOut(operation.Name(), exception);
                break;
        }
    }

    /// <summary>The application is shutting down: from now on nothing is judged, logged or probed (a closed connection is no outage).</summary>
    public void Stop() => _stopped = true;

    /// <summary>
    /// Redis refused the credentials while connecting: a misconfiguration, reported at once (event 7) whether or not a
    /// caller asked, and nobody waits for a connection the server refused.
    /// </summary>
    public void OnCredentialsRejected(Exception exception) =>
        RecordFailure(CacheOperation.ConnectionLost, exception, new FailureVerdict(RedisFailureKind.Authentication, _shards.Deployment, IsOutage: true, MayReset: false));

    /// <summary>The window's time is up and this caller holds the probe permit: the probe runs off every caller's path.</summary>
    public void StartProbe(Shard shard) => _ = ProbeAsync(shard, early: false);

    /// <summary>
    /// The client lost its connection to a primary of a replicated deployment: that primary's window (its shard's in
    /// a cluster) starts checking at once, so reads go to a replica without each waiting for a command to the dead
    /// primary to time out first. A single server is left to the calls that fail: its one connection is reset then.
    /// </summary>
    public void OnPrimaryConnectionLost(IConnectionMultiplexer multiplexer, EndPoint endPoint, Exception exception)
    {
        if (!_shards.IsReplicated)
        {
            return;
        }

        var address = ShardMap.Format(endPoint);
        if ((_shards.IsCluster ? _shards.Shards.FirstOrDefault(s => s.ServerAddress == address) : _shards.Deployment) is { } shard)
        {
            RecordFailure(CacheOperation.ConnectionLost, exception, new FailureVerdict(RedisFailureKind.Transport, shard, IsOutage: false, MayReset: false));
        }
    }

    /// <summary>
    /// The client saw the topology change (a failover completed, a server came back): the windows that are open are
    /// probed now rather than when they elapse, so the promoted replica is used as soon as it takes writes. A probe
    /// that finds it not ready yet leaves the window as it was.
    /// </summary>
    public void OnTopologyChanged(IConnectionMultiplexer multiplexer)
    {
        if (_stopped)
        {
            return;
        }

        _shards.Refresh(multiplexer);
        foreach (var shard in (IEnumerable<Shard>)[_shards.Deployment, .. _shards.Shards])
        {
            if (shard.Controller.TryStartEarlyProbe())
            {
                _ = ProbeAsync(shard, early: true);
            }
        }
    }

    private async Task ProbeAsync(Shard shard, bool early)
    {
        var generation = _connection.Generation;
        var controller = shard.Controller;

        // Started right after its permit was granted, on the granting thread: this is that permit.
        var permit = controller.Permit;
        ReplayResult? replay;
        try
        {
            await _connection.ProbeAsync(_operationTimeout, shard.ProbeKey).ConfigureAwait(false);

            // What could not certainly reach Redis is applied before anyone else uses it: callers keep
            // short-circuiting until the window closes below.
            replay = await ReplayAsync(shard).ConfigureAwait(false);
        }
        catch (Exception exception)
        {
            ProbeFailed(shard, exception, generation, early, permit);
            return;
        }

        if (replay is { } applied)
        {
            _notify.Replayed(applied, logged: applied.KeysDeleted + applied.TagsEvicted + applied.KeysPurged > 0 || applied.Dropped > 0);
        }

        if (controller.RecordProbeSuccess() is { } closed)
        {
            shard.ResumeReplicaReads();

            // Records made by calls that failed while the replay ran: applied right away, off every caller's path.
            if (_pending.Count > 0)
            {
                _ = CatchUpAsync(shard);
            }

            _notify.Closed(shard, closed);
        }
    }

    /// <summary>A failed probe is a confirmation, whatever the error: the window opens (or reopens) in full.</summary>
    private void ProbeFailed(Shard shard, Exception exception, int generation, bool early, long permit)
    {
        if (_stopped)
        {
            return;
        }

        if (_judge.IsStarvation(exception))
        {
            // A probe judged on a starved pool says nothing about Redis: the window keeps its end, and the next
            // caller past it probes again.
            shard.Controller.RecordFailure(exception, confirmed: true, fromProbe: true, early: true, permit);
            return;
        }

        var current = generation == _connection.Generation;
        var kind = RedisErrorClassifier.Classify(exception, connectionWasReset: !current);
        var transition = shard.Controller.RecordFailure(exception, confirmed: true, fromProbe: true, early, permit);
        if (transition is WindowController.Transition.AlreadyOpen or WindowController.Transition.Stale)
        {
            return;
        }

        // A failed probe confirms whatever the error: an unclassified one may let the connection go as a transport one does.
        if (_judge.MayReset(exception, kind == RedisFailureKind.None ? RedisFailureKind.Transport : kind, current, shard))
        {
            _connection.Reset(ConnectsAgainAfter(exception));
        }

        _notify.Opened(shard, CacheOperation.Probe, exception, kind, transition);
        WatchForTakeover(shard);
    }

    /// <summary>
    /// A cluster shard whose primary has a replica is out: the replica is expected to take over within seconds, but
    /// the client routes the shard's slots to the old primary until it reads the topology again, on its own schedule
    /// (seconds after the promotion, or only once the old node answers again). So until the window closes, every
    /// quarter of a second the replicas are asked whether one took over (<see cref="IRedisConnection.TakenOverAsync"/>:
    /// one ROLE to each, the old primary is left alone); once one did, the client reads the topology again and the
    /// shard is probed early, through the client's routing, until it is in use again.
    /// </summary>
    private void WatchForTakeover(Shard shard)
    {
        if (_shards.IsCluster && !shard.IsDeployment && shard.Replicas.Count > 0 && shard.TryStartTakeoverWatch())
        {
            _ = WatchForTakeoverAsync(shard);
        }
    }

    private async Task WatchForTakeoverAsync(Shard shard)
    {
        var tookOver = false;
        try
        {
            while (!_stopped && !shard.Retired && !shard.Controller.IsAvailable)
            {
                await Task.Delay(s_takeoverCheckEvery).ConfigureAwait(false);
                if (!tookOver)
                {
                    if (shard.Replicas is not { Count: > 0 } replicas)
                    {
                        break;
                    }

                    tookOver = await _connection.TakenOverAsync(_operationTimeout, replicas).ConfigureAwait(false);
                }

                // Probed through the client's routing, so that what is pending is applied where the keys now live.
                if (tookOver && shard.Controller.TryStartEarlyProbe())
                {
                    await ProbeAsync(shard, early: true).ConfigureAwait(false);
                }
            }
        }
        catch (Exception)
        {
            // Whatever went wrong, the window's own probe still ends the outage; a watch that is still wanted starts again below.
        }
        finally
        {
            shard.EndTakeoverWatch();
        }

        if (!_stopped && !shard.Retired && !shard.Controller.IsAvailable)
        {
            // Opened again while this watch was ending, or it failed: a watch is still wanted.
            WatchForTakeover(shard);
        }
    }

    /// <summary>After a refusal or a closed connection a new one may start connecting at once; after a timeout it waits for the probe.</summary>
    private static bool ConnectsAgainAfter(Exception exception) => FailureJudge.IsFastFailure(exception);

    private Task<ReplayResult?> ReplayAsync(Shard shard) =>
        _pending.Count == 0 && !_pending.Overflow.Overflowed
            ? Task.FromResult<ReplayResult?>(null)
            : ReplayCoreAsync(shard);

    /// <summary>
    /// In a cluster, a shard's probe applies the records of its own keys and of the shards in use (not those of shards
    /// still out: their primaries would fail the replay); tag evictions touch every shard, so they wait until none is out.
    /// </summary>
    private async Task<ReplayResult?> ReplayCoreAsync(Shard shard)
    {
        var database = _connection.Database ?? throw new RedisConnectPendingException("No Redis connection to apply the pending invalidations on.");
        Func<KeyKind, string, bool>? include = null;
        if (_shards.IsCluster)
        {
            include = (kind, key) => kind == KeyKind.OutputCacheTag
                ? _shards.Shards.All(s => ReferenceEquals(s, shard) || s.Controller.IsAvailable)
                : _shards.ShardOf(kind, key) is not { } owner || ReferenceEquals(owner, shard) || owner.Controller.IsAvailable;
        }

        return await _pending.ReplayAsync(database, _evictTag, include).ConfigureAwait(false);
    }

    private async Task CatchUpAsync(Shard shard)
    {
        // One at a time: what fails meanwhile waits for the next one, or for the next probe.
        if (Interlocked.Exchange(ref _catchingUp, 1) == 1)
        {
            return;
        }

        try
        {
            if (await ReplayAsync(shard).ConfigureAwait(false) is { } applied)
            {
                _notify.Replayed(applied, logged: false);
            }
        }
        catch (Exception exception)
        {
            // Kept for the next probe; the failure counts like any other (a suspicion to check, or an outage).
            _metrics.Completed(CacheOperation.CatchUpReplay, CacheOutcome.Error, 0);
            var verdict = _judge.Judge(exception, default, _connection.Generation);
            if (verdict.IsRedisFailure)
            {
                RecordFailure(CacheOperation.CatchUpReplay, exception, verdict);
            }
        }
        finally
        {
            Volatile.Write(ref _catchingUp, 0);
        }
    }
}
