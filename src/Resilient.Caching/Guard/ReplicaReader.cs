using Resilient.Caching.Connection;
using Resilient.Caching.Diagnostics;
using Resilient.Caching.Outages;
using Resilient.Caching.Recovery;
using Resilient.Caching.Storage;
using Resilient.Caching.Topology;
using StackExchange.Redis;

namespace Resilient.Caching.Guard;

/// <summary>
/// Reads a distributed-cache entry from a replica while its primary is out (Sentinel, a cluster shard, a primary with
/// replicas): the stock cache's hash field of the entry's bytes, read with <see cref="CommandFlags.PreferReplica"/>.
/// The sliding expiration is not renewed: a replica takes no writes.
/// </summary>
internal sealed class ReplicaReader
{
    // How often, and how long at most, a read looks again for a replica connection being made again (the client
    // reconnects within a heartbeat or two); a replica still not there after that is out for the window.
    private static readonly TimeSpan s_retryEvery = TimeSpan.FromMilliseconds(20);
    private static readonly TimeSpan s_reconnectWait = TimeSpan.FromMilliseconds(250);

    private readonly ShardMap _shards;
    private readonly StoredKeys _keys;
    private readonly IRedisConnection _connection;
    private readonly OutageLedger _ledger;
    private readonly ResilientCacheMetrics _metrics;
    private readonly OutageNotifications _notify;
    private readonly FailureJudge _judge;
    private readonly TimeSpan _maxWait;

    // Waits for the network run on real time; the window runs on the application's clock.
    private readonly TimeProvider _realTime = TimeProvider.System;

    public ReplicaReader(
        ShardMap shards, StoredKeys keys, IRedisConnection connection, OutageLedger ledger, ResilientCacheMetrics metrics, OutageNotifications notify, FailureJudge judge,
        TimeSpan operationTimeout)
    {
        _judge = judge;
        _shards = shards;
        _keys = keys;
        _connection = connection;
        _ledger = ledger;
        _metrics = metrics;
        _notify = notify;
        _maxWait = s_reconnectWait < operationTimeout ? s_reconnectWait : operationTimeout;
    }

    /// <summary>
    /// Whether a read the primary cannot serve now may be served by a replica: the deployment has one for the key,
    /// replica reads are not paused after a failure, and no write of the key is pending (the replica would still hold
    /// the value that write replaced).
    /// </summary>
    public bool CanRead(CacheOperation operation, in CacheTarget target, Shard shard) =>
        operation == CacheOperation.Get
        && target.IsCacheKey
        && _shards.IsReplicated
        && (shard.IsDeployment || shard.HasReplica)
        && shard.Controller.TimeProvider.GetTimestamp() >= shard.ReplicaReadsPausedUntil
        && _connection.IsReady
        && !_ledger.HasPendingWrite(target);

    /// <summary>The entry's bytes from a replica, for a synchronous caller; false when that failed too (replica reads are then paused for the window).</summary>
    public bool TryRead(in CacheTarget target, Shard shard, out byte[]? data)
    {
        var started = _metrics.Start();
        var reading = _realTime.GetTimestamp();
        while (true)
        {
            try
            {
                var database = _connection.Database ?? throw new RedisConnectPendingException("No Redis connection at the moment.");
                data = database.HashGet(_keys.RedisKeyOf(KeyKind.CacheKey, target.Key!), StoredKeys.DataField, CommandFlags.PreferReplica);
                break;
            }
            catch (Exception exception) when (RedisErrorClassifier.Classify(exception) != RedisFailureKind.None)
            {
                if (!WaitsForReconnect(exception, reading, shard))
                {
                    PauseAfterFailure(shard, exception);
                    data = null;
                    return false;
                }
            }

            Thread.Sleep(s_retryEvery);
        }

        Served(target, data, started, reading);
        return true;
    }

    /// <summary>The asynchronous <see cref="TryRead"/>: null when the replica read failed.</summary>
    public async ValueTask<ReplicaRead?> ReadAsync(CacheTarget target, Shard shard, CancellationToken cancellationToken)
    {
        var started = _metrics.Start();
        var reading = _realTime.GetTimestamp();
        byte[]? data;
        while (true)
        {
            try
            {
                var database = _connection.Database ?? throw new RedisConnectPendingException("No Redis connection at the moment.");
                var read = database.HashGetAsync(_keys.RedisKeyOf(KeyKind.CacheKey, target.Key!), StoredKeys.DataField, CommandFlags.PreferReplica);
                data = cancellationToken.CanBeCanceled ? await read.WaitAsync(cancellationToken).ConfigureAwait(false) : await read.ConfigureAwait(false);
                break;
            }
            catch (Exception exception) when (RedisErrorClassifier.Classify(exception) != RedisFailureKind.None)
            {
                if (!WaitsForReconnect(exception, reading, shard))
                {
                    PauseAfterFailure(shard, exception);
                    return null;
                }
            }

            await Task.Delay(s_retryEvery, _realTime, cancellationToken).ConfigureAwait(false);
        }

        Served(target, data, started, reading);
        return new ReplicaRead(data);
    }

    /// <summary>
    /// A replica's connection that was just closed (Sentinel closes the clients of the replica it promotes) or is
    /// being made again is back within milliseconds: a read waits for it, polling, a little (never past the operation
    /// timeout), rather than answer with a made-up miss. Not once another read found the replica out.
    /// </summary>
    private bool WaitsForReconnect(Exception exception, long reading, Shard shard) =>
        exception is RedisConnectionException
        && RedisErrorClassifier.Classify(exception) == RedisFailureKind.Transport
        && _realTime.GetElapsedTime(reading) + s_retryEvery < _maxWait
        && shard.Controller.TimeProvider.GetTimestamp() >= shard.ReplicaReadsPausedUntil;

    private void Served(in CacheTarget target, byte[]? data, long started, long reading)
    {
        _ledger.ReadForReal(target);
        _judge.Answered(reading);
        _metrics.Completed(CacheOperation.Get, data is null ? CacheOutcome.Miss : CacheOutcome.Hit, started);
    }

    /// <summary>
    /// Replica reads are out for the rest of the window (a second at least): reads skip Redis at once meanwhile, as
    /// without replicas. Not after a timeout the application's own stall explains (<see cref="FailureJudge.IsStarvation"/>):
    /// the replica answers, and the next read asks it again.
    /// </summary>
    private void PauseAfterFailure(Shard shard, Exception exception)
    {
        if (_judge.IsStarvation(exception))
        {
            _notify.Stalled(CacheOperation.Get, exception);
            return;
        }

        var controller = shard.Controller;
        var pause = Math.Max(controller.RetryAfter.TotalSeconds, 1);
        shard.PauseReplicaReads(controller.TimeProvider.GetTimestamp() + (long)(pause * controller.TimeProvider.TimestampFrequency));
        _notify.FailedWhileOut("replica read", exception);
    }
}

/// <summary>A replica's answer: the entry's bytes, or null when the key is not there.</summary>
internal readonly record struct ReplicaRead(byte[]? Data);
