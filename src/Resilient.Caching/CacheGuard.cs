using System.Runtime.CompilerServices;
using Microsoft.Extensions.Logging;
using Resilient.Caching.Connection;
using Resilient.Caching.Diagnostics;

namespace Resilient.Caching;

/// <summary>
/// The one path every cache operation takes, synchronous or asynchronous, for the distributed cache and the
/// output-cache store alike: check the window, call Redis, classify what went wrong, open or close the window,
/// log once, count. The decorators only say which inner call to make.
/// </summary>
internal sealed class CacheGuard
{
    private readonly CacheAvailability _availability;
    private readonly IResettableConnection _connection;
    private readonly ResilientCacheMetrics _metrics;
    private readonly ILogger _logger;
    private readonly bool _ignoreExceptions;
    private readonly bool _logExceptions;
    private readonly double _windowSeconds;

    public CacheGuard(
        CacheAvailability availability,
        IResettableConnection connection,
        ResilientCacheMetrics metrics,
        ILogger logger,
        bool ignoreExceptions,
        bool logIgnoredExceptions)
    {
        _availability = availability;
        _connection = connection;
        _metrics = metrics;
        _logger = logger;
        _ignoreExceptions = ignoreExceptions;
        _logExceptions = logIgnoredExceptions;
        _windowSeconds = availability.Window.TotalSeconds;
    }

    public CacheAvailability Availability => _availability;

    public ILogger Logger => _logger;

    public TimeProvider TimeProvider => _availability.TimeProvider;

    public TResult Run<TState, TResult>(
        CacheOperation operation, TState state, Func<TState, TResult> call, Func<TResult, CacheOutcome> outcome, TResult fallback)
    {
        if (!TryBegin(operation, out var attempt))
        {
            return fallback;
        }

        try
        {
            var result = call(state);
            Succeeded(attempt, outcome(result));
            return result;
        }
        catch (Exception exception) when (ShouldSwallow(attempt, exception, pending: null, CancellationToken.None))
        {
            return fallback;
        }
    }

    // Pooled state machines: an operation that waits for Redis reuses a box instead of allocating one per call.
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    public async ValueTask<TResult> RunAsync<TState, TResult>(
        CacheOperation operation,
        TState state,
        Func<TState, CancellationToken, ValueTask<TResult>> call,
        Func<TResult, CacheOutcome> outcome,
        TResult fallback,
        CancellationToken cancellationToken,
        bool holdsCallerMemory = false)
    {
        // Nothing is awaited before this returns on the short-circuit path, so it completes synchronously:
        // no allocation while the window is open.
        if (!TryBegin(operation, out var attempt))
        {
            return fallback;
        }

        Task<TResult>? pending = null;
        try
        {
            var call1 = call(state, cancellationToken);
            TResult result;
            if (WaitsWithToken(call1.IsCompleted, holdsCallerMemory, cancellationToken))
            {
                pending = call1.AsTask();
                result = await pending.WaitAsync(cancellationToken).ConfigureAwait(false);
            }
            else
            {
                result = await call1.ConfigureAwait(false);
            }

            Succeeded(attempt, outcome(result));
            return result;
        }
        catch (Exception exception) when (ShouldSwallow(attempt, exception, pending, cancellationToken))
        {
            return fallback;
        }
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    public async ValueTask RunAsync<TState>(
        CacheOperation operation, TState state, Func<TState, CancellationToken, ValueTask> call, CancellationToken cancellationToken, bool holdsCallerMemory = false)
    {
        if (!TryBegin(operation, out var attempt))
        {
            return;
        }

        Task? pending = null;
        try
        {
            var call1 = call(state, cancellationToken);
            if (WaitsWithToken(call1.IsCompleted, holdsCallerMemory, cancellationToken))
            {
                pending = call1.AsTask();
                await pending.WaitAsync(cancellationToken).ConfigureAwait(false);
            }
            else
            {
                await call1.ConfigureAwait(false);
            }

            Succeeded(attempt, CacheOutcome.Write);
        }
        catch (Exception exception) when (ShouldSwallow(attempt, exception, pending, cancellationToken))
        {
        }
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

    /// <summary>True when the caller may call Redis; false (or <see cref="CacheUnavailableException"/>) inside the window.</summary>
    public bool TryBegin(CacheOperation operation, out Attempt attempt)
    {
        var gate = _availability.TryEnter();
        if (gate == CacheAvailability.Gate.ShortCircuit)
        {
            _metrics.Skipped(operation);
            attempt = default;
            return _ignoreExceptions ? false : throw CreateUnavailableException();
        }

        attempt = new Attempt(operation, gate == CacheAvailability.Gate.Probe, _metrics.Start());
        return true;
    }

    public void Succeeded(in Attempt attempt, CacheOutcome outcome)
    {
        if (attempt.IsProbe)
        {
            CloseWindow();
        }

        _metrics.Completed(attempt.Operation, outcome, attempt.StartTimestamp);
    }

    private void CloseWindow()
    {
        var (outage, skipped) = _availability.RecordProbeSuccess();
        _metrics.Transition("closed");
        Log.WindowClosed(_logger, outage.TotalSeconds, skipped);
    }

    /// <summary>
    /// The exception filter of every operation: records what the failure means and answers whether the caller
    /// gets the fallback (true) or the exception (false). Runs before the stack unwinds, which is harmless here.
    /// </summary>
    public bool ShouldSwallow(in Attempt attempt, Exception exception, Task? pending, CancellationToken cancellationToken)
    {
        if (exception is OperationCanceledException && cancellationToken.IsCancellationRequested)
        {
            if (pending is { IsCompleted: false })
            {
                // The caller gave up; Redis has not answered yet. Its answer still counts, off the caller's path:
                // a probe keeps the probe until Redis answers, so nobody else pays the same wait meanwhile.
                ObserveAbandoned(pending, attempt.Operation, attempt.IsProbe);
            }
            else if (attempt.IsProbe)
            {
                _availability.ReleaseProbe();
            }

            return false;
        }

        var kind = RedisErrorClassifier.Classify(exception);
        if (kind == RedisFailureKind.None)
        {
            if (attempt.IsProbe)
            {
                _availability.ReleaseProbe();
            }

            _metrics.Completed(attempt.Operation, CacheOutcome.Error, attempt.StartTimestamp);
            return false;
        }

        RecordFailure(attempt.Operation, attempt.IsProbe, exception, kind);
        _metrics.Completed(attempt.Operation, CacheOutcome.Error, attempt.StartTimestamp);
        return _ignoreExceptions;
    }

    public CacheUnavailableException CreateUnavailableException()
    {
        var retryAfter = _availability.RetryAfter;
        return new CacheUnavailableException(
            $"Redis is unavailable; the cache skips it for another {retryAfter.TotalSeconds:0.###} s.", _availability.LastError)
        {
            RetryAfter = retryAfter,
        };
    }

    private void RecordFailure(CacheOperation operation, bool isProbe, Exception exception, RedisFailureKind kind)
    {
        var transition = _availability.RecordFailure(exception, isProbe);
        if (kind == RedisFailureKind.Transport && transition != CacheAvailability.Transition.AlreadyOpen && exception is not RedisConnectPendingException)
        {
            // The socket may be silently dead while the multiplexer still believes it is connected (its own
            // heartbeat needs tens of seconds, and nothing is sent during the window): probe on a fresh one.
            _connection.Reset();
        }

        var logged = _logExceptions ? exception : null;
        var reason = Describe(exception);
        var operationName = OperationName(operation);
        switch (transition)
        {
            case CacheAvailability.Transition.Opened:
                _metrics.Transition("opened");
                if (kind == RedisFailureKind.Authentication)
                {
                    Log.AuthenticationFailed(_logger, logged, operationName, reason, _windowSeconds);
                }
                else
                {
                    Log.WindowOpened(_logger, logged, operationName, reason, _windowSeconds);
                }

                break;
            case CacheAvailability.Transition.Reopened:
                _metrics.Transition("reopened");
                if (kind == RedisFailureKind.Authentication)
                {
                    Log.AuthenticationFailed(_logger, logged, operationName, reason, _windowSeconds);
                }
                else
                {
                    Log.ProbeFailed(_logger, logged, operationName, reason, _windowSeconds);
                }

                break;
            default:
                if (_logExceptions)
                {
                    Log.ErrorWhileUnavailable(_logger, exception, operationName, reason);
                }

                break;
        }
    }

    private void ObserveAbandoned(Task pending, CacheOperation operation, bool isProbe)
    {
        _ = pending.ContinueWith(
            static (task, state) =>
            {
                var (guard, operation, isProbe) = ((CacheGuard, CacheOperation, bool))state!;
                var exception = task.Exception?.InnerException;
                if (exception is null)
                {
                    if (isProbe && task.IsCompletedSuccessfully)
                    {
                        guard.CloseWindow();
                    }
                    else if (isProbe)
                    {
                        guard._availability.ReleaseProbe();
                    }

                    return;
                }

                var kind = RedisErrorClassifier.Classify(exception);
                if (kind != RedisFailureKind.None)
                {
                    guard.RecordFailure(operation, isProbe, exception, kind);
                    return;
                }

                if (isProbe)
                {
                    guard._availability.ReleaseProbe();
                }

                if (guard._logExceptions)
                {
                    Log.AbandonedOperationFailed(guard._logger, exception, OperationName(operation), Describe(exception));
                }
            },
            (this, operation, isProbe),
            CancellationToken.None,
            TaskContinuationOptions.ExecuteSynchronously,
            TaskScheduler.Default);
    }

    internal static string OperationName(CacheOperation operation) => operation switch
    {
        CacheOperation.Get => "Get",
        CacheOperation.Set => "Set",
        CacheOperation.Refresh => "Refresh",
        CacheOperation.Remove => "Remove",
        CacheOperation.Ping => "Ping",
        _ => "EvictByTag",
    };

    // One description for every log line and the health check: type and first line, passwords masked.
    private static string Describe(Exception exception) => Redaction.Describe(exception);

    internal readonly record struct Attempt(CacheOperation Operation, bool IsProbe, long StartTimestamp);
}
