using System.Runtime.CompilerServices;
using Microsoft.Extensions.Logging;
using Resilient.Caching.Connection;
using Resilient.Caching.Diagnostics;
using Resilient.Caching.Recovery;
using Resilient.Caching.Topology;
using StackExchange.Redis;

namespace Resilient.Caching;

/// <summary>
/// The one path every cache operation takes, synchronous or asynchronous, for the distributed cache, the
/// output-cache store and the health check: ask the window controller, make sure a connection is there (within the
/// operation timeout), call Redis, classify what went wrong, tell the controller, log once, count. The decorators
/// only say which inner call to make.
/// </summary>
/// <remarks>
/// Every call ends within the operation timeout plus the client's timeout granularity: a call waits for a connection
/// only when there is none, and then calls Redis only if the wait was short enough to leave a whole operation timeout;
/// probes run off the callers' path; when the window opens, commands still waiting on the connection are failed
/// at once (the connection is reset) and callers waiting for a connection are released.
/// </remarks>
internal sealed class CacheGuard
{
    // A call that had to wait longer than this for a connection takes its fallback rather than a whole operation
    // timeout on top of the wait.
    private static readonly TimeSpan s_connectGrace = TimeSpan.FromMilliseconds(50);

    // How often, and how long at most, a replica read looks again for a replica connection being made again (the
    // client reconnects within a heartbeat or two); a replica still not there after that is out for the window.
    private static readonly TimeSpan s_replicaRetry = TimeSpan.FromMilliseconds(20);
    private static readonly TimeSpan s_replicaReconnect = TimeSpan.FromMilliseconds(250);

    // The stock cache keeps an entry's bytes in this field of its hash.
    private static readonly RedisValue s_dataField = "data";

    private readonly WindowController _controller;
    private readonly ShardMap _shards;
    private readonly RedisKey _keyPrefix;
    private readonly IGuardedConnection _connection;
    private readonly PendingInvalidations _pending;
    private readonly bool _invalidateReads;
    private readonly ResilientCacheMetrics _metrics;
    private readonly ILogger _logger;
    private readonly bool _ignoreExceptions;
    private readonly bool _logExceptions;
    private readonly TimeSpan _operationTimeout;
    private readonly double _windowSeconds;

    // Bounds on waits for the network run on real time; the window runs on the application's clock.
    private readonly TimeProvider _network = TimeProvider.System;

    public CacheGuard(
        WindowController controller,
        IGuardedConnection connection,
        ResilientCacheMetrics metrics,
        ILogger logger,
        bool ignoreExceptions,
        bool logIgnoredExceptions,
        TimeSpan operationTimeout,
        PendingInvalidations pending,
        bool invalidateKeysReadDuringOutage = false,
        ShardMap? shards = null,
        string? instanceName = null)
    {
        _controller = controller;
        _shards = shards ?? new ShardMap(instanceName, controller, hook => new WindowController(controller.TimeProvider, controller.Window, operationTimeout, hook));
        _keyPrefix = instanceName ?? string.Empty;
        _connection = connection;
        _pending = pending;
        _invalidateReads = invalidateKeysReadDuringOutage;
        _metrics = metrics;
        _logger = logger;
        _ignoreExceptions = ignoreExceptions;
        _logExceptions = logIgnoredExceptions;
        _operationTimeout = operationTimeout;
        _windowSeconds = controller.Window.TotalSeconds;
        Availability = new CacheAvailability(_shards, pending);
    }

    /// <summary>Reads from a replica's reply what the caller's read returns (the value, or whether it was found and copied).</summary>
    public delegate TResult ReplicaResult<TState, TResult>(TState state, byte[]? data);

    public CacheAvailability Availability { get; }

    internal WindowController Controller => _controller;

    internal ShardMap Shards => _shards;

    internal PendingInvalidations Pending => _pending;

    /// <summary>Evicts a tag through the inner output-cache store, for the replay of tag evictions; set by the store.</summary>
    internal Func<string, CancellationToken, ValueTask>? EvictTag { get; set; }

    public ILogger Logger => _logger;

    public TimeProvider TimeProvider => _controller.TimeProvider;

    public TResult Run<TState, TResult>(
        CacheOperation operation, Target target, TState state, Func<TState, TResult> call, Func<TResult, CacheOutcome> outcome, TResult fallback,
        ReplicaResult<TState, TResult>? fromReplica = null)
    {
        var entry = Enter(operation, target, out var window);
        if (entry == Entry.Replica)
        {
            return FromReplica(operation, target, window, state, fromReplica, fallback);
        }

        if (entry == Entry.Fallback || (entry == Entry.NeedsConnection && WaitForConnection(operation, target) == TimeSpan.Zero))
        {
            return fallback;
        }

        var attempt = Begin(operation, target);
        try
        {
            var result = call(state);
            Succeeded(attempt, outcome(result));
            return result;
        }
        catch (Exception exception) when (Settle(attempt, exception, pending: null, CancellationToken.None, retryOnReplica: fromReplica is not null))
        {
            if (fromReplica is not null && RetriesOnReplica(attempt, exception) is { } replica)
            {
                return FromReplica(operation, target, replica, state, fromReplica, fallback);
            }

            return fallback;
        }
    }

    // Pooled state machines: an operation that waits for Redis reuses a box instead of allocating one per call.
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    public async ValueTask<TResult> RunAsync<TState, TResult>(
        CacheOperation operation,
        Target target,
        TState state,
        Func<TState, CancellationToken, ValueTask<TResult>> call,
        Func<TResult, CacheOutcome> outcome,
        TResult fallback,
        CancellationToken cancellationToken,
        bool holdsCallerMemory = false,
        ReplicaResult<TState, TResult>? fromReplica = null)
    {
        // Nothing is awaited before this returns on the short-circuit path, so it completes synchronously:
        // no allocation while the window is open.
        var entry = Enter(operation, target, out var window);
        if (entry == Entry.Replica)
        {
            return await FromReplicaAsync(operation, target, window, state, fromReplica, fallback, cancellationToken).ConfigureAwait(false);
        }

        var deadline = Timeout.InfiniteTimeSpan;
        if (entry == Entry.NeedsConnection)
        {
            deadline = await WaitForConnectionAsync(operation, target, holdsCallerMemory, cancellationToken).ConfigureAwait(false);
        }

        if (entry == Entry.Fallback || deadline == TimeSpan.Zero)
        {
            return fallback;
        }

        var attempt = Begin(operation, target);
        Task<TResult>? pending = null;
        try
        {
            var inner = call(state, cancellationToken);
            TResult result;
            if (WaitsWithToken(inner.IsCompleted, holdsCallerMemory, cancellationToken) || (deadline != Timeout.InfiniteTimeSpan && !inner.IsCompleted))
            {
                pending = inner.AsTask();
                result = await pending.WaitAsync(deadline, _network, cancellationToken).ConfigureAwait(false);
            }
            else
            {
                result = await inner.ConfigureAwait(false);
            }

            Succeeded(attempt, outcome(result));
            return result;
        }
        catch (Exception exception) when (Settle(attempt, exception, pending, cancellationToken, deadline, retryOnReplica: fromReplica is not null))
        {
            if (fromReplica is not null && RetriesOnReplica(attempt, exception) is { } replica)
            {
                return await FromReplicaAsync(operation, target, replica, state, fromReplica, fallback, cancellationToken).ConfigureAwait(false);
            }

            return fallback;
        }
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    public async ValueTask RunAsync<TState>(
        CacheOperation operation, Target target, TState state, Func<TState, CancellationToken, ValueTask> call, CancellationToken cancellationToken, bool holdsCallerMemory = false)
    {
        var entry = Enter(operation, target, out _);
        var deadline = Timeout.InfiniteTimeSpan;
        if (entry == Entry.NeedsConnection)
        {
            deadline = await WaitForConnectionAsync(operation, target, holdsCallerMemory, cancellationToken).ConfigureAwait(false);
        }

        if (entry == Entry.Fallback || deadline == TimeSpan.Zero)
        {
            return;
        }

        var attempt = Begin(operation, target);
        Task? pending = null;
        try
        {
            var inner = call(state, cancellationToken);
            if (WaitsWithToken(inner.IsCompleted, holdsCallerMemory, cancellationToken) || (deadline != Timeout.InfiniteTimeSpan && !inner.IsCompleted))
            {
                pending = inner.AsTask();
                await pending.WaitAsync(deadline, _network, cancellationToken).ConfigureAwait(false);
            }
            else
            {
                await inner.ConfigureAwait(false);
            }

            Succeeded(attempt, CacheOutcome.Write);
        }
        catch (Exception exception) when (Settle(attempt, exception, pending, cancellationToken, deadline))
        {
        }
    }

    public CacheUnavailableException CreateUnavailableException() => CreateUnavailableException(_shards.Whole);

    private CacheUnavailableException CreateUnavailableException(Shard window)
    {
        var retryAfter = window.Controller.RetryAfter;
        return new CacheUnavailableException(
            $"Redis is unavailable; the cache skips it for another {retryAfter.TotalSeconds:0.###} s.", Availability.LastError)
        {
            RetryAfter = retryAfter,
        };
    }

    /// <summary>
    /// Whether the caller waits for a pending inner call with its own token. The stock provider stops looking at
    /// the token once a command is sent; waiting with it hands control back to a caller that gives up
    /// (SessionOptions.IOTimeout, an aborted request) while Redis hangs. Not for calls that hold the caller's
    /// buffers (ReadOnlySequence, IBufferWriter, PipeWriter): the caller recycles those as soon as it regains
    /// control, while the abandoned call would still read or write them. Those still pass the token inward.
    /// </summary>
    private static bool WaitsWithToken(bool completed, bool holdsCallerMemory, CancellationToken cancellationToken) =>
        !completed && cancellationToken.CanBeCanceled && !holdsCallerMemory;

    /// <summary>
    /// The window's verdict, and whether a connection is there: the hot path is three volatile reads (the whole
    /// window, whether any shard is out, the connection); the key is hashed to its shard only while one is.
    /// </summary>
    private Entry Enter(CacheOperation operation, in Target target, out Shard window)
    {
        window = _shards.Whole;
        var gate = _controller.TryEnter();
        if (gate == WindowController.Gate.Proceed && _shards.AnyShardOut && _shards.ShardOf(target.Kind, target.Key) is { } shard)
        {
            window = shard;
            gate = shard.Controller.TryEnter();
        }

        if (gate == WindowController.Gate.Proceed)
        {
            if (IsComputedFromMadeUpMiss(operation, target))
            {
                // Not applied, so the value Redis holds stays intact.
                _metrics.Skipped(operation);
                return Entry.Fallback;
            }

            return _connection.IsReady ? Entry.Proceed : Entry.NeedsConnection;
        }

        if (gate == WindowController.Gate.StartProbe)
        {
            StartProbe(window);
        }

        return CanReadFromReplica(operation, target, window) ? Entry.Replica : Skip(operation, target, window);
    }

    private Entry Skip(CacheOperation operation, in Target target, Shard window)
    {
        _metrics.Skipped(operation);
        Remember(operation, target);
        return _ignoreExceptions ? Entry.Fallback : throw CreateUnavailableException(window);
    }

    /// <summary>The caller's result from a replica's answer, or the fallback (a skip, remembered) when there is none.</summary>
    private TResult FromReplica<TState, TResult>(
        CacheOperation operation, in Target target, Shard window, TState state, ReplicaResult<TState, TResult>? fromReplica, TResult fallback)
    {
        if (fromReplica is not null && TryReadFromReplica(operation, target, window, out var data))
        {
            return fromReplica(state, data);
        }

        Skip(operation, target, window);
        return fallback;
    }

    /// <summary>The asynchronous <see cref="FromReplica"/>.</summary>
    private async ValueTask<TResult> FromReplicaAsync<TState, TResult>(
        CacheOperation operation, Target target, Shard window, TState state, ReplicaResult<TState, TResult>? fromReplica, TResult fallback, CancellationToken cancellationToken)
    {
        if (fromReplica is not null && await ReadFromReplicaAsync(operation, target, window, cancellationToken).ConfigureAwait(false) is { } read)
        {
            return fromReplica(state, read.Data);
        }

        Skip(operation, target, window);
        return fallback;
    }

    /// <summary>
    /// Whether a read Redis's primary cannot serve now may be served by a replica: the deployment has one for the
    /// key, replica reads have not just failed, and no write of the key is pending (the replica would still hold the
    /// value that write replaced).
    /// </summary>
    private bool CanReadFromReplica(CacheOperation operation, in Target target, Shard window) =>
        operation == CacheOperation.Get
        && target is { Kind: InvalidationKind.CacheKey, Key: { } key }
        && _shards.IsReplicated
        && (ReferenceEquals(window, _shards.Whole) || window.HasReplica)
        && window.Controller.TimeProvider.GetTimestamp() >= window.ReplicaReadsOffUntil
        && _connection.IsReady
        && !_pending.Contains(InvalidationKind.CacheKey, key);

    /// <summary>
    /// The entry's bytes from a replica (the stock cache's hash field), for a synchronous caller; false when that
    /// failed too (the replica is then out for the window). The sliding expiration is not renewed: a replica takes no writes.
    /// </summary>
    private bool TryReadFromReplica(CacheOperation operation, in Target target, Shard window, out byte[]? data)
    {
        var started = _metrics.Start();
        var reading = _network.GetTimestamp();
        while (true)
        {
            try
            {
                var database = _connection.Database ?? throw new RedisConnectPendingException("No Redis connection at the moment.");
                data = database.HashGet(_keyPrefix.Append(target.Key), s_dataField, CommandFlags.PreferReplica);
                break;
            }
            catch (Exception exception) when (RedisErrorClassifier.Classify(exception) != RedisFailureKind.None)
            {
                if (!KeepsTryingReplica(exception, reading, window))
                {
                    data = null;
                    return false;
                }
            }

            Thread.Sleep(s_replicaRetry);
        }

        ReadFromReplica(operation, target, data, started);
        return true;
    }

    /// <summary>The asynchronous <see cref="TryReadFromReplica"/>: null when the replica read failed.</summary>
    private async ValueTask<ReplicaRead?> ReadFromReplicaAsync(CacheOperation operation, Target target, Shard window, CancellationToken cancellationToken)
    {
        var started = _metrics.Start();
        var reading = _network.GetTimestamp();
        byte[]? data;
        while (true)
        {
            try
            {
                var database = _connection.Database ?? throw new RedisConnectPendingException("No Redis connection at the moment.");
                var read = database.HashGetAsync(_keyPrefix.Append(target.Key), s_dataField, CommandFlags.PreferReplica);
                data = cancellationToken.CanBeCanceled ? await read.WaitAsync(cancellationToken).ConfigureAwait(false) : await read.ConfigureAwait(false);
                break;
            }
            catch (Exception exception) when (RedisErrorClassifier.Classify(exception) != RedisFailureKind.None)
            {
                if (!KeepsTryingReplica(exception, reading, window))
                {
                    return null;
                }
            }

            await Task.Delay(s_replicaRetry, _network, cancellationToken).ConfigureAwait(false);
        }

        ReadFromReplica(operation, target, data, started);
        return new ReplicaRead(data);
    }

    /// <summary>
    /// A replica's connection that was just closed (Sentinel closes the clients of the replica it promotes) or is
    /// being made again is back within milliseconds: a read waits for it, polling, a little (never past the operation
    /// timeout), rather than answer with a made-up miss that would cost the key its value after the outage. Not once
    /// another read found the replica out. Giving up counts the replica out for the window.
    /// </summary>
    private bool KeepsTryingReplica(Exception exception, long reading, Shard window)
    {
        if (exception is RedisConnectionException && RedisErrorClassifier.Classify(exception) == RedisFailureKind.Transport
            && _network.GetElapsedTime(reading) + s_replicaRetry < (s_replicaReconnect < _operationTimeout ? s_replicaReconnect : _operationTimeout)
            && window.Controller.TimeProvider.GetTimestamp() >= window.ReplicaReadsOffUntil)
        {
            return true;
        }

        ReplicaReadFailed(window, exception);
        return false;
    }

    private void ReadFromReplica(CacheOperation operation, in Target target, byte[]? data, long started)
    {
        // A real read: the key's value is not one made up from nothing.
        _pending.Misses.Clear(target.Key!);
        _metrics.Completed(operation, data is null ? CacheOutcome.Miss : CacheOutcome.Hit, started);
    }

    private void ReplicaReadFailed(Shard window, Exception exception)
    {
        var controller = window.Controller;
        // Out for the rest of the window (a second at least): reads skip Redis at once meanwhile, as without replicas.
        var pause = Math.Max(controller.RetryAfter.TotalSeconds, 1);
        window.ReplicaReadsOffUntil = controller.TimeProvider.GetTimestamp() + (long)(pause * controller.TimeProvider.TimestampFrequency);
        if (_logExceptions)
        {
            Log.ErrorWhileUnavailable(_logger, exception, "replica read", Describe(exception));
        }
    }

    private Attempt Begin(CacheOperation operation, in Target target) => new(operation, target, _connection.Generation, _metrics.Start());

    private void Succeeded(in Attempt attempt, CacheOutcome outcome)
    {
        if (attempt.Target is { Kind: InvalidationKind.CacheKey, Key: { } key } && attempt.Operation is CacheOperation.Get or CacheOperation.Set or CacheOperation.Remove)
        {
            // A real read, or a write that reached Redis: the key's value is no longer one made up from nothing.
            _pending.Misses.Clear(key);
        }

        _metrics.Completed(attempt.Operation, outcome, attempt.StartTimestamp);
    }

    /// <summary>
    /// What a call that did not certainly reach Redis leaves behind: a write (skipped, failed, or with an unknown
    /// outcome) becomes an invalidation applied before Redis is used again; a read answered with a made-up miss marks
    /// its key, so that a value computed from it does not overwrite the real one.
    /// </summary>
    private void Remember(CacheOperation operation, in Target target)
    {
        if (target.Key is not { } key)
        {
            return;
        }

        switch (operation)
        {
            case CacheOperation.Get when target.Kind == InvalidationKind.CacheKey:
                Noted(_pending.Misses.Mark(key));
                if (_invalidateReads)
                {
                    Noted(_pending.Record(InvalidationKind.CacheKey, key));
                }

                break;
            case CacheOperation.Set when IsComputedFromMadeUpMiss(operation, target):
                // Void, not an intent to replace the real value: nothing to invalidate.
                break;
            case CacheOperation.Set or CacheOperation.Remove or CacheOperation.EvictByTag:
                Noted(_pending.Record(target.Kind, key));
                break;
        }
    }

    /// <summary>
    /// A write of a key whose last read was a miss the cache made up: the value was computed from nothing, so it is
    /// never applied (inside the window or after it). The mark is spent by this write.
    /// </summary>
    private bool IsComputedFromMadeUpMiss(CacheOperation operation, in Target target)
    {
        if (operation != CacheOperation.Set || target is not { Kind: InvalidationKind.CacheKey, Key: { } key } || !_pending.Misses.IsMarked(key))
        {
            return false;
        }

        _pending.Misses.Clear(key);
        return true;
    }

    private void Noted(RecordOutcome outcome)
    {
        if (outcome == RecordOutcome.OverflowStarted)
        {
            _metrics.InvalidationsDropped();
            Log.InvalidationsDropped(_logger, _pending.Capacity, _pending.PurgeOnOverflow);
        }
        else if (outcome == RecordOutcome.Dropped)
        {
            _metrics.InvalidationsDropped();
        }
    }

    /// <summary>Waits for a connection (a cold start, a reconnect) for a synchronous caller; <see cref="TimeSpan.Zero"/> means "take the fallback".</summary>
    private TimeSpan WaitForConnection(CacheOperation operation, in Target target)
    {
        var started = _network.GetTimestamp();
        var ready = _connection.WaitReady(_operationTimeout, _controller.Released);

        // A synchronous call cannot be abandoned: it may call Redis only with a whole operation timeout left.
        return AfterConnectionWait(operation, target, ready, started, canAbandon: false);
    }

    /// <summary>
    /// Waits for a connection (a cold start, a reconnect) for an asynchronous caller. Returns how long the call may
    /// then wait for Redis (<see cref="Timeout.InfiniteTimeSpan"/>: the client's own timeout is enough), or
    /// <see cref="TimeSpan.Zero"/> for "take the fallback".
    /// </summary>
    private async ValueTask<TimeSpan> WaitForConnectionAsync(CacheOperation operation, Target target, bool holdsCallerMemory, CancellationToken cancellationToken)
    {
        var started = _network.GetTimestamp();
        bool ready;
        if (cancellationToken.CanBeCanceled)
        {
            // Rare (a cold start, a reconnect): a linked token is affordable here.
            using var either = CancellationTokenSource.CreateLinkedTokenSource(_controller.Released, cancellationToken);
            ready = await _connection.WaitReadyAsync(_operationTimeout, either.Token).ConfigureAwait(false);
            cancellationToken.ThrowIfCancellationRequested();
        }
        else
        {
            ready = await _connection.WaitReadyAsync(_operationTimeout, _controller.Released).ConfigureAwait(false);
        }

        return AfterConnectionWait(operation, target, ready, started, canAbandon: !holdsCallerMemory);
    }

    private TimeSpan AfterConnectionWait(CacheOperation operation, in Target target, bool ready, long started, bool canAbandon)
    {
        var waited = _network.GetElapsedTime(started);
        if (ready && waited <= s_connectGrace)
        {
            return Timeout.InfiniteTimeSpan;
        }

        if (ready && canAbandon && _operationTimeout - waited > s_connectGrace)
        {
            // What is left of the operation timeout, after which the caller is let go and the call observed.
            return _operationTimeout - waited;
        }

        if (!ready && !_controller.Released.IsCancellationRequested)
        {
            // A whole operation timeout without a connection: as good as a command timing out (or the credentials were refused).
            var exception = _connection.ConnectFailure is { } failure && RedisErrorClassifier.Classify(failure) == RedisFailureKind.Authentication
                ? failure
                : RedisConnectPendingException.WaitedOutFor(_operationTimeout);
            if (!Settle(Begin(operation, target), exception, pending: null, CancellationToken.None))
            {
                throw exception;
            }

            return TimeSpan.Zero;
        }

        Skip(operation, target, _shards.Whole);
        return TimeSpan.Zero;
    }

    /// <summary>
    /// What a failed call means, for a call the caller waited for and for one it abandoned alike: classifies the
    /// error, tells the controller, logs, counts. Answers whether the caller gets the fallback (true) or the
    /// exception (false). Runs as an exception filter, before the stack unwinds, which is harmless here.
    /// </summary>
    /// <param name="attempt">The call.</param>
    /// <param name="exception">What it threw.</param>
    /// <param name="pending">The inner call, when the caller stopped waiting for it.</param>
    /// <param name="cancellationToken">The caller's token.</param>
    /// <param name="deadline">Our own bound after a slow connect, if any.</param>
    /// <param name="retryOnReplica">The caller can take a replica's answer: a read that failed fast, whose key a replica may serve, is not remembered here (the caller reads it from the replica, or remembers it when that fails too).</param>
    private bool Settle(in Attempt attempt, Exception exception, Task? pending, CancellationToken cancellationToken, TimeSpan deadline = default, bool retryOnReplica = false)
    {
        if (exception is TimeoutException && deadline > TimeSpan.Zero && pending is { IsCompleted: false })
        {
            // Our own bound after a slow connect, not Redis timing out: let the caller go, and let the call's real
            // outcome count when it comes.
            ObserveAbandoned(pending, attempt);
            _metrics.Skipped(attempt.Operation);
            Remember(attempt.Operation, attempt.Target);
            return _ignoreExceptions;
        }

        if (exception is OperationCanceledException && cancellationToken.IsCancellationRequested)
        {
            if (pending is { IsCompleted: false })
            {
                // The caller gave up; Redis has not answered yet. Its answer still counts, off the caller's path.
                ObserveAbandoned(pending, attempt);
            }

            return false;
        }

        _metrics.Completed(attempt.Operation, CacheOutcome.Error, attempt.StartTimestamp);
        var kind = RedisErrorClassifier.Classify(exception, connectionWasReset: attempt.Generation != _connection.Generation);
        if (kind == RedisFailureKind.None)
        {
            return false;
        }

        var window = RecordFailure(attempt, exception, kind);
        if (!(retryOnReplica && IsFastFailure(exception) && CanReadFromReplica(attempt.Operation, attempt.Target, window)))
        {
            Remember(attempt.Operation, attempt.Target);
        }

        return _ignoreExceptions;
    }

    private void ObserveAbandoned(Task pending, Attempt attempt)
    {
        _ = pending.ContinueWith(
            static (task, state) =>
            {
                var (guard, attempt) = ((CacheGuard, Attempt))state!;
                if (task.Exception?.InnerException is not { } exception)
                {
                    return;
                }

                if (!guard.Settle(attempt, exception, pending: null, CancellationToken.None) && guard._logExceptions)
                {
                    Log.AbandonedOperationFailed(guard._logger, exception, attempt.Operation.Name(), Describe(exception));
                }
            },
            (this, attempt),
            CancellationToken.None,
            TaskContinuationOptions.ExecuteSynchronously,
            TaskScheduler.Default);
    }

    /// <summary>
    /// The window of a read that failed fast and may be answered by a replica instead (the primary went away while
    /// the read was under way: a reset, a refused or closed connection); null when the fallback stands. A read that
    /// timed out has had its whole operation timeout already.
    /// </summary>
    private Shard? RetriesOnReplica(in Attempt attempt, Exception exception)
    {
        if (!IsFastFailure(exception) || RedisErrorClassifier.Classify(exception, attempt.Generation != _connection.Generation) == RedisFailureKind.None)
        {
            return null;
        }

        var window = WindowOf(attempt.Target, exception);
        return CanReadFromReplica(attempt.Operation, attempt.Target, window) ? window : null;
    }

    private static bool IsFastFailure(Exception exception) => exception is not (TimeoutException or OperationCanceledException);

    private Shard RecordFailure(in Attempt attempt, Exception exception, RedisFailureKind kind)
    {
        var window = WindowOf(attempt.Target, exception);

        // Only a failure of the current connection says anything about it: one of a connection already reset does not
        // reset the fresh one (a probe may be using it). With more than one server the client fails over by itself,
        // and the connections to the servers that are fine stay.
        var mayReset = attempt.Generation == _connection.Generation && kind == RedisFailureKind.Transport && CanReset(window);
        RecordFailure(window, attempt.Operation.Name(), attempt.Operation, exception, kind, IsConfirmed(exception, kind), mayReset);
        return window;
    }

    /// <summary>
    /// Tells a window's controller about a failure, and does what the transition asks: reset the connection (when
    /// allowed), log once, start the probe of a suspicion. The one body for a failed call and for a lost connection.
    /// </summary>
    /// <param name="window">The window the failure belongs to.</param>
    /// <param name="what">What failed, for the log.</param>
    /// <param name="operation">The operation, for the metrics and the event when the window opens.</param>
    /// <param name="exception">What went wrong.</param>
    /// <param name="kind">Its classification.</param>
    /// <param name="confirmed">An outage at once, rather than a suspicion to check.</param>
    /// <param name="mayReset">Whether the connection may be reset.</param>
    private void RecordFailure(Shard window, string what, CacheOperation operation, Exception exception, RedisFailureKind kind, bool confirmed, bool mayReset)
    {
        var transition = window.Controller.RecordFailure(exception, confirmed, fromProbe: false);
        switch (transition)
        {
            case WindowController.Transition.Opened:
                if (mayReset)
                {
                    // Releases every command still waiting on the dead connection, and the probe connects afresh.
                    _connection.Reset();
                }

                LogOpened(window, operation, exception, kind, transition);
                break;
            case WindowController.Transition.Suspected:
                if (mayReset && !IsStarvation(exception))
                {
                    _connection.Reset();
                }

                if (_logExceptions)
                {
                    Log.FailureSuspected(_logger, exception, what, WithShard(window, Describe(exception)));
                }

                StartProbe(window);
                break;
            default:
                if (_logExceptions)
                {
                    Log.ErrorWhileUnavailable(_logger, exception, what, Describe(exception));
                }

                break;
        }
    }

    /// <summary>
    /// Whether a failure is an outage at once, or a suspicion a probe must confirm first: a reset, a refusal or a
    /// closed connection may be a blip (CLIENT KILL, a load balancer recycling a connection, a quick restart), a
    /// READONLY reply is what a primary says in the instant it becomes a replica in a failover, and a
    /// timeout while the application's own thread pool is starved says nothing about the path to Redis.
    /// </summary>
    private bool IsConfirmed(Exception exception, RedisFailureKind kind) => kind == RedisFailureKind.ServerUnavailable
        ? !RedisErrorClassifier.IsReadOnlyReply(exception)
        : kind != RedisFailureKind.Transport || exception switch
    {
        RedisConnectPendingException pending => pending.WaitedOut,
        TimeoutException => !IsStarvation(exception),
        _ => false,
    };

    private bool IsStarvation(Exception exception) => exception is TimeoutException && IsThreadPoolStarved();

    /// <summary>
    /// The window a failure belongs to: the shard of the key in a cluster, unless there was no connection at all
    /// (that is the whole deployment's); the one window otherwise.
    /// </summary>
    private Shard WindowOf(in Target target, Exception exception) =>
        exception is RedisConnectPendingException ? _shards.Whole : _shards.ShardOf(target.Kind, target.Key) ?? _shards.Whole;

    /// <summary>Only a single server's connection is reset: with replicas or a cluster the client reconnects each server by itself.</summary>
    private bool CanReset(Shard window) => ReferenceEquals(window, _shards.Whole) && !_shards.IsReplicated;

    private string WithShard(Shard window, string reason) =>
        ReferenceEquals(window, _shards.Whole) ? reason : $"{reason} on shard {window.ServerAddress} (slots {window.Slots})";

    /// <summary>
    /// The client lost its connection to a primary of a replicated deployment: that primary's window (its shard's in
    /// a cluster) starts checking at once, so reads go to a replica without each waiting for a command to the dead
    /// primary to time out first. A single server is left to the calls that fail: its one connection is reset then.
    /// </summary>
    internal void OnPrimaryConnectionFailed(IConnectionMultiplexer multiplexer, System.Net.EndPoint endPoint, Exception exception)
    {
        if (!_shards.IsReplicated)
        {
            return;
        }

        var address = ShardMap.Format(endPoint);
        if ((_shards.IsCluster ? _shards.Shards.FirstOrDefault(s => s.ServerAddress == address) : _shards.Whole) is { } window)
        {
            RecordFailure(window, "connection", CacheOperation.Ping, exception, RedisFailureKind.Transport, confirmed: false, mayReset: false);
        }
    }

    /// <summary>
    /// The client saw the topology change (a failover completed, a server came back): the windows that are open are
    /// probed now rather than when they elapse, so the promoted replica is used as soon as it takes writes. A probe
    /// that finds it not ready yet leaves the window as it was.
    /// </summary>
    internal void OnTopologyChanged(IConnectionMultiplexer multiplexer)
    {
        _shards.Refresh(multiplexer);
        if (_controller.TryStartEarlyProbe())
        {
            _ = ProbeAsync(_shards.Whole, early: true);
        }

        foreach (var shard in _shards.Shards)
        {
            if (shard.Controller.TryStartEarlyProbe())
            {
                _ = ProbeAsync(shard, early: true);
            }
        }
    }

    /// <summary>Whether the thread pool is starved now: work is queued while every pool thread is busy. Replaceable for tests.</summary>
    internal Func<bool> IsThreadPoolStarved { get; set; } = static () =>
    {
        ThreadPool.GetMaxThreads(out var maxWorkers, out _);
        ThreadPool.GetAvailableThreads(out var availableWorkers, out _);
        return ThreadPool.PendingWorkItemCount > 0 && maxWorkers - availableWorkers >= ThreadPool.ThreadCount;
    };

    /// <summary>The probe runs off every caller's path: the caller that started it, like the others, takes its fallback.</summary>
    private void StartProbe(Shard window) => _ = ProbeAsync(window, early: false);

    private async Task ProbeAsync(Shard window, bool early)
    {
        var generation = _connection.Generation;
        var controller = window.Controller;
        ReplayResult? replay = null;
        try
        {
            await _connection.ProbeAsync(_operationTimeout, window.ProbeKey).ConfigureAwait(false);

            // What could not certainly reach Redis is applied before anyone else uses it: callers keep
            // short-circuiting until the window closes below.
            replay = await ReplayAsync(window).ConfigureAwait(false);
        }
        catch (Exception exception)
        {
            var kind = RedisErrorClassifier.Classify(exception, connectionWasReset: generation != _connection.Generation);
            var transition = controller.RecordFailure(exception, confirmed: true, fromProbe: true, early);
            if (transition == WindowController.Transition.AlreadyOpen)
            {
                return;
            }

            if (kind is RedisFailureKind.Transport or RedisFailureKind.None && generation == _connection.Generation && CanReset(window))
            {
                _connection.Reset();
            }

            LogOpened(window, CacheOperation.Ping, exception, kind, transition);
            return;
        }

        if (replay is { } applied && (applied.KeysDeleted + applied.TagsEvicted + applied.KeysPurged > 0 || applied.Dropped > 0))
        {
            _metrics.Replayed(applied.Duration);
            Log.InvalidationsApplied(_logger, applied.KeysDeleted, applied.TagsEvicted, applied.KeysPurged, applied.Duration.TotalMilliseconds, applied.Dropped);
        }

        if (controller.RecordProbeSuccess() is { } closed)
        {
            window.ReplicaReadsOffUntil = 0;

            // Records made by calls that failed while the replay ran: applied right away, off every caller's path.
            if (_pending.Count > 0)
            {
                _ = CatchUpAsync(window);
            }

            var shard = ReferenceEquals(window, _shards.Whole) ? null : window;
            if (closed.WasOutage)
            {
                _metrics.Transition(WindowController.Transition.Closed, shard?.ServerAddress);
                if (shard is null)
                {
                    Log.WindowClosed(_logger, closed.Outage.TotalSeconds, closed.Skipped);
                    _controller.RaiseChanged(true);
                }
                else
                {
                    Log.ShardWindowClosed(_logger, shard.ServerAddress, shard.Slots, closed.Outage.TotalSeconds, closed.Skipped);
                }

                Availability.RaiseClosed(_logger, closed.Outage, closed.Skipped, shard?.ServerAddress);
            }
            else
            {
                Log.BlipRecovered(_logger, closed.Outage.TotalMilliseconds, closed.Skipped);
            }
        }
    }

    private Task<ReplayResult?> ReplayAsync(Shard window) =>
        _pending.Count == 0 && !_pending.Overflow.Overflowed
            ? Task.FromResult<ReplayResult?>(null)
            : ReplayCoreAsync(window);

    /// <summary>
    /// In a cluster, a shard's probe applies the records of its own keys and of the shards in use (not those of shards
    /// still out: their primaries would fail the replay); tag evictions touch every shard, so they wait until none is out.
    /// </summary>
    private async Task<ReplayResult?> ReplayCoreAsync(Shard window)
    {
        var database = _connection.Database ?? throw new RedisConnectPendingException("No Redis connection to apply the pending invalidations on.");
        Func<InvalidationKind, string, bool>? include = null;
        if (_shards.IsCluster)
        {
            include = (kind, key) => kind == InvalidationKind.OutputCacheTag
                ? _shards.Shards.All(s => ReferenceEquals(s, window) || s.Controller.IsAvailable)
                : _shards.ShardOf(kind, key) is not { } shard || ReferenceEquals(shard, window) || shard.Controller.IsAvailable;
        }

        return await _pending.ReplayAsync(database, EvictTag, include).ConfigureAwait(false);
    }

    private async Task CatchUpAsync(Shard window)
    {
        try
        {
            if (await ReplayAsync(window).ConfigureAwait(false) is { } applied)
            {
                _metrics.Replayed(applied.Duration);
            }
        }
        catch (Exception exception)
        {
            // Kept for the next probe; the failure counts like any other (a suspicion to check, or an outage).
            _ = Settle(Begin(CacheOperation.Ping, default), exception, pending: null, CancellationToken.None);
        }
    }

    private void LogOpened(Shard window, CacheOperation operation, Exception exception, RedisFailureKind kind, WindowController.Transition transition)
    {
        var shard = ReferenceEquals(window, _shards.Whole) ? null : window;
        _metrics.Transition(transition, shard?.ServerAddress);
        var logged = _logExceptions ? exception : null;
        var reason = Describe(exception);
        if (shard is not null && kind != RedisFailureKind.Authentication)
        {
            if (transition == WindowController.Transition.Reopened)
            {
                Log.ShardProbeFailed(_logger, logged, shard.ServerAddress, shard.Slots, operation.Name(), reason, _windowSeconds);
            }
            else
            {
                Log.ShardWindowOpened(_logger, logged, shard.ServerAddress, shard.Slots, operation.Name(), reason, _windowSeconds);
            }

            Availability.RaiseOpened(_logger, operation, exception, authentication: false, transition == WindowController.Transition.Reopened, shard.ServerAddress);
            return;
        }

        if (kind == RedisFailureKind.Authentication)
        {
            Log.AuthenticationFailed(_logger, logged, operation.Name(), reason, _windowSeconds);
        }
        else if (transition == WindowController.Transition.Reopened)
        {
            Log.ProbeFailed(_logger, logged, operation.Name(), reason, _windowSeconds);
        }
        else
        {
            Log.WindowOpened(_logger, logged, operation.Name(), reason, _windowSeconds);
        }

        if (transition == WindowController.Transition.Opened)
        {
            _controller.RaiseChanged(false);
        }

        Availability.RaiseOpened(_logger, operation, exception, kind == RedisFailureKind.Authentication, transition == WindowController.Transition.Reopened, serverAddress: null);
    }

    // One description for every log line and the health check: type and first line, passwords masked.
    private static string Describe(Exception exception) => Redaction.Describe(exception);

    private enum Entry
    {
        Proceed,
        NeedsConnection,
        Fallback,

        /// <summary>The primary is out, but a replica may serve the read.</summary>
        Replica,
    }

    private readonly record struct ReplicaRead(byte[]? Data);

    private readonly record struct Attempt(CacheOperation Operation, Target Target, int Generation, long StartTimestamp);

    /// <summary>The key (or tag) an operation is about, and what kind it is; <c>default</c> for none (a PING).</summary>
    internal readonly record struct Target(InvalidationKind Kind, string? Key);
}
