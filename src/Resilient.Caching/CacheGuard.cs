using System.Runtime.CompilerServices;
using Microsoft.Extensions.Logging;
using Resilient.Caching.Connection;
using Resilient.Caching.Diagnostics;
using Resilient.Caching.Recovery;

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

    private readonly WindowController _controller;
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
        bool invalidateKeysReadDuringOutage = false)
    {
        _controller = controller;
        _connection = connection;
        _pending = pending;
        _invalidateReads = invalidateKeysReadDuringOutage;
        _metrics = metrics;
        _logger = logger;
        _ignoreExceptions = ignoreExceptions;
        _logExceptions = logIgnoredExceptions;
        _operationTimeout = operationTimeout;
        _windowSeconds = controller.Window.TotalSeconds;
        Availability = new CacheAvailability(controller, pending);
    }

    public CacheAvailability Availability { get; }

    internal WindowController Controller => _controller;

    internal PendingInvalidations Pending => _pending;

    /// <summary>Evicts a tag through the inner output-cache store, for the replay of tag evictions; set by the store.</summary>
    internal Func<string, CancellationToken, ValueTask>? EvictTag { get; set; }

    public ILogger Logger => _logger;

    public TimeProvider TimeProvider => _controller.TimeProvider;

    public TResult Run<TState, TResult>(
        CacheOperation operation, Target target, TState state, Func<TState, TResult> call, Func<TResult, CacheOutcome> outcome, TResult fallback)
    {
        var entry = Enter(operation, target);
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
        catch (Exception exception) when (Settle(attempt, exception, pending: null, CancellationToken.None))
        {
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
        bool holdsCallerMemory = false)
    {
        // Nothing is awaited before this returns on the short-circuit path, so it completes synchronously:
        // no allocation while the window is open.
        var entry = Enter(operation, target);
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
        catch (Exception exception) when (Settle(attempt, exception, pending, cancellationToken, deadline))
        {
            return fallback;
        }
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    public async ValueTask RunAsync<TState>(
        CacheOperation operation, Target target, TState state, Func<TState, CancellationToken, ValueTask> call, CancellationToken cancellationToken, bool holdsCallerMemory = false)
    {
        var entry = Enter(operation, target);
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

    public CacheUnavailableException CreateUnavailableException()
    {
        var retryAfter = _controller.RetryAfter;
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

    /// <summary>The window's verdict, and whether a connection is there: the hot path is two volatile reads.</summary>
    private Entry Enter(CacheOperation operation, in Target target)
    {
        var gate = _controller.TryEnter();
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
            StartProbe();
        }

        return Skip(operation, target);
    }

    private Entry Skip(CacheOperation operation, in Target target)
    {
        _metrics.Skipped(operation);
        Remember(operation, target);
        return _ignoreExceptions ? Entry.Fallback : throw CreateUnavailableException();
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

        Skip(operation, target);
        return TimeSpan.Zero;
    }

    /// <summary>
    /// What a failed call means, for a call the caller waited for and for one it abandoned alike: classifies the
    /// error, tells the controller, logs, counts. Answers whether the caller gets the fallback (true) or the
    /// exception (false). Runs as an exception filter, before the stack unwinds, which is harmless here.
    /// </summary>
    private bool Settle(in Attempt attempt, Exception exception, Task? pending, CancellationToken cancellationToken, TimeSpan deadline = default)
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

        Remember(attempt.Operation, attempt.Target);
        RecordFailure(attempt, exception, kind);
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

    private void RecordFailure(in Attempt attempt, Exception exception, RedisFailureKind kind)
    {
        var transition = _controller.RecordFailure(exception, IsConfirmed(exception, kind), fromProbe: false);

        // Only a failure of the current connection says anything about it: one of a connection already reset does not
        // reset the fresh one (a probe may be using it).
        var onCurrentConnection = attempt.Generation == _connection.Generation;
        switch (transition)
        {
            case WindowController.Transition.Opened:
                if (kind == RedisFailureKind.Transport && onCurrentConnection)
                {
                    // Releases every command still waiting on the dead connection, and the probe connects afresh.
                    _connection.Reset();
                }

                LogOpened(attempt.Operation, exception, kind, transition);
                break;
            case WindowController.Transition.Suspected:
                if (kind == RedisFailureKind.Transport && onCurrentConnection && !IsStarvation(exception))
                {
                    _connection.Reset();
                }

                if (_logExceptions)
                {
                    Log.FailureSuspected(_logger, exception, attempt.Operation.Name(), Describe(exception));
                }

                StartProbe();
                break;
            default:
                if (_logExceptions)
                {
                    Log.ErrorWhileUnavailable(_logger, exception, attempt.Operation.Name(), Describe(exception));
                }

                break;
        }
    }

    /// <summary>
    /// Whether a failure is an outage at once, or a suspicion a probe must confirm first: a reset, a refusal or a
    /// closed connection may be a blip (CLIENT KILL, a load balancer recycling a connection, a quick restart), and a
    /// timeout while the application's own thread pool is starved says nothing about the path to Redis.
    /// </summary>
    private bool IsConfirmed(Exception exception, RedisFailureKind kind) => kind != RedisFailureKind.Transport || exception switch
    {
        RedisConnectPendingException pending => pending.WaitedOut,
        TimeoutException => !IsStarvation(exception),
        _ => false,
    };

    private bool IsStarvation(Exception exception) => exception is TimeoutException && IsThreadPoolStarved();

    /// <summary>Whether the thread pool is starved now: work is queued while every pool thread is busy. Replaceable for tests.</summary>
    internal Func<bool> IsThreadPoolStarved { get; set; } = static () =>
    {
        ThreadPool.GetMaxThreads(out var maxWorkers, out _);
        ThreadPool.GetAvailableThreads(out var availableWorkers, out _);
        return ThreadPool.PendingWorkItemCount > 0 && maxWorkers - availableWorkers >= ThreadPool.ThreadCount;
    };

    /// <summary>The probe runs off every caller's path: the caller that started it, like the others, takes its fallback.</summary>
    private void StartProbe() => _ = ProbeAsync();

    private async Task ProbeAsync()
    {
        var generation = _connection.Generation;
        ReplayResult? replay = null;
        try
        {
            await _connection.ProbeAsync(_operationTimeout).ConfigureAwait(false);

            // What could not certainly reach Redis is applied before anyone else uses it: callers keep
            // short-circuiting until the window closes below.
            replay = await ReplayAsync().ConfigureAwait(false);
        }
        catch (Exception exception)
        {
            var kind = RedisErrorClassifier.Classify(exception, connectionWasReset: generation != _connection.Generation);
            var transition = _controller.RecordFailure(exception, confirmed: true, fromProbe: true);
            if (kind is RedisFailureKind.Transport or RedisFailureKind.None && generation == _connection.Generation)
            {
                _connection.Reset();
            }

            LogOpened(CacheOperation.Ping, exception, kind, transition);
            return;
        }

        if (replay is { } applied && (applied.KeysDeleted + applied.TagsEvicted + applied.KeysPurged > 0 || applied.Dropped > 0))
        {
            _metrics.Replayed(applied.Duration);
            Log.InvalidationsApplied(_logger, applied.KeysDeleted, applied.TagsEvicted, applied.KeysPurged, applied.Duration.TotalMilliseconds, applied.Dropped);
        }

        if (_controller.RecordProbeSuccess() is { } closed)
        {
            // Records made by calls that failed while the replay ran: applied right away, off every caller's path.
            if (_pending.Count > 0)
            {
                _ = CatchUpAsync();
            }

            if (closed.WasOutage)
            {
                _metrics.Transition(WindowController.Transition.Closed);
                Log.WindowClosed(_logger, closed.Outage.TotalSeconds, closed.Skipped);
                _controller.RaiseChanged(true);
                Availability.RaiseClosed(_logger, closed.Outage, closed.Skipped);
            }
            else
            {
                Log.BlipRecovered(_logger, closed.Outage.TotalMilliseconds, closed.Skipped);
            }
        }
    }

    private Task<ReplayResult?> ReplayAsync() =>
        _pending.Count == 0 && !_pending.Overflow.Overflowed
            ? Task.FromResult<ReplayResult?>(null)
            : ReplayCoreAsync();

    private async Task<ReplayResult?> ReplayCoreAsync()
    {
        var database = _connection.Database ?? throw new RedisConnectPendingException("No Redis connection to apply the pending invalidations on.");
        return await _pending.ReplayAsync(database, EvictTag).ConfigureAwait(false);
    }

    private async Task CatchUpAsync()
    {
        try
        {
            if (await ReplayAsync().ConfigureAwait(false) is { } applied)
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

    private void LogOpened(CacheOperation operation, Exception exception, RedisFailureKind kind, WindowController.Transition transition)
    {
        _metrics.Transition(transition);
        var logged = _logExceptions ? exception : null;
        var reason = Describe(exception);
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

        Availability.RaiseOpened(_logger, operation, exception, kind == RedisFailureKind.Authentication, transition == WindowController.Transition.Reopened);
    }

    // One description for every log line and the health check: type and first line, passwords masked.
    private static string Describe(Exception exception) => Redaction.Describe(exception);

    private enum Entry
    {
        Proceed,
        NeedsConnection,
        Fallback,
    }

    private readonly record struct Attempt(CacheOperation Operation, Target Target, int Generation, long StartTimestamp);

    /// <summary>The key (or tag) an operation is about, and what kind it is; <c>default</c> for none (a PING).</summary>
    internal readonly record struct Target(InvalidationKind Kind, string? Key);
}
