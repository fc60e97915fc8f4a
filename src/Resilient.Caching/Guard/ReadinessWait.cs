using Resilient.Caching.Connection;
using Resilient.Caching.Outages;

namespace Resilient.Caching.Guard;

/// <summary>How a wait before a call ended (for a connection, or for the verdict on a suspected failure), and so what the call may do next.</summary>
internal enum ReadinessOutcome
{
    /// <summary>A connection was there at once (or within a moment): call Redis with the client's own timeout.</summary>
    Ready,

    /// <summary>A connection came after a while: call Redis, but let the caller go at <see cref="ReadinessResult.Deadline"/>.</summary>
    ReadyWithin,

    /// <summary>No connection within the operation timeout, or the credentials were refused: a Redis failure (<see cref="ReadinessResult.Failure"/>).</summary>
    NoConnection,

    /// <summary>
    /// Redis stopped being used while the caller waited (a window opened), or the connection came too late to call
    /// Redis within the caller's budget: skip Redis, as inside the window.
    /// </summary>
    Skip,
}

/// <summary>What a wait before a call came to.</summary>
internal readonly record struct ReadinessResult(ReadinessOutcome Outcome, TimeSpan Deadline = default, Exception? Failure = null)
{
    /// <summary>Gets how long the call may then wait for Redis: <see cref="Timeout.InfiniteTimeSpan"/> for the client's own timeout, <see cref="TimeSpan.Zero"/> for not at all.</summary>
    public TimeSpan Bound => Outcome switch
    {
        ReadinessOutcome.Ready => Timeout.InfiniteTimeSpan,
        ReadinessOutcome.ReadyWithin => Deadline,
        _ => TimeSpan.Zero,
    };
}

/// <summary>
/// The waits before a call, each within the caller's budget: for a connection when there is none (a cold start, a
/// reconnect), released at once when Redis stops being used; and for the verdict on a suspected failure (a reset that
/// may be a blip), so that a blip costs callers a few milliseconds rather than a made-up miss or a skipped write. A
/// call may then call Redis only with time left: a synchronous one cannot be abandoned, so it must not have waited
/// more than a moment; an asynchronous one gets what is left of the operation timeout.
/// </summary>
internal sealed class ReadinessWait
{
    // A call that had to wait longer than this for a connection takes its fallback rather than a whole operation
    // timeout on top of the wait.
    private static readonly TimeSpan s_grace = TimeSpan.FromMilliseconds(50);

    private readonly IRedisConnection _connection;
    private readonly WindowController _deployment;
    private readonly TimeSpan _operationTimeout;

    // Bounds on waits for the network run on real time; the window runs on the application's clock.
    private readonly TimeProvider _realTime = TimeProvider.System;

    public ReadinessWait(IRedisConnection connection, WindowController deployment, TimeSpan operationTimeout)
    {
        _connection = connection;
        _deployment = deployment;
        _operationTimeout = operationTimeout;
    }

    /// <summary>Gets the operation timeout: every call's budget.</summary>
    public TimeSpan OperationTimeout => _operationTimeout;

    /// <summary>Gets how long a wait may be and still count as "at once" (the caller then gets a whole operation timeout).</summary>
    public static TimeSpan Grace => s_grace;

    /// <summary>Waits for the verdict on a suspected failure, for a synchronous caller: a moment at most.</summary>
    /// <returns><see cref="ReadinessOutcome.Ready"/> when it was a blip; otherwise <see cref="ReadinessOutcome.Skip"/>.</returns>
    public static ReadinessResult WaitForVerdict(Task<bool>? verdict, TimeSpan waitedAlready = default)
    {
        var left = s_grace - waitedAlready;
        var blip = verdict is null || (left > TimeSpan.Zero && verdict.Wait(left) && verdict.Result);
        return new(blip && verdict is not null ? ReadinessOutcome.Ready : ReadinessOutcome.Skip);
    }

    /// <summary>Waits for the verdict on a suspected failure, for an asynchronous caller, within what is left of the operation timeout.</summary>
    /// <param name="verdict">The window's verdict.</param>
    /// <param name="canAbandon">The call may be left running when the caller is let go.</param>
    /// <param name="waitedAlready">How much of the caller's budget is spent already.</param>
    /// <param name="cancellationToken">The caller's token.</param>
    public async ValueTask<ReadinessResult> WaitForVerdictAsync(Task<bool>? verdict, bool canAbandon, TimeSpan waitedAlready, CancellationToken cancellationToken)
    {
        if (verdict is null)
        {
            return new(ReadinessOutcome.Skip);
        }

        var started = _realTime.GetTimestamp();
        var limit = (canAbandon ? _operationTimeout - s_grace : s_grace) - waitedAlready;
        var blip = false;
        if (limit > TimeSpan.Zero)
        {
            try
            {
                blip = await verdict.WaitAsync(limit, _realTime, cancellationToken).ConfigureAwait(false);
            }
            catch (TimeoutException)
            {
                // No verdict in time: as inside the window.
            }
        }

        return blip ? Result(ready: true, started, canAbandon, waitedAlready, CancellationToken.None) : new(ReadinessOutcome.Skip);
    }

    /// <summary>Waits for a connection, for a synchronous caller.</summary>
    public ReadinessResult Wait()
    {
        var started = _realTime.GetTimestamp();

        // One token for the wait and its verdict: a blip may close the window (a new token) before the caller resumes.
        var stopped = _deployment.StoppedUsingRedis;
        var ready = _connection.WaitReady(_operationTimeout, stopped);
        return Result(ready, started, canAbandon: false, stopped: stopped);
    }

    /// <summary>Waits for a connection, for an asynchronous caller; the caller's token is honoured.</summary>
    /// <param name="canAbandon">The call may be left running when the caller is let go (it holds none of the caller's buffers).</param>
    /// <param name="cancellationToken">The caller's token.</param>
    public async ValueTask<ReadinessResult> WaitAsync(bool canAbandon, CancellationToken cancellationToken)
    {
        var started = _realTime.GetTimestamp();
        var stopped = _deployment.StoppedUsingRedis;
        bool ready;
        if (cancellationToken.CanBeCanceled)
        {
            // Rare (a cold start, a reconnect): a linked token is affordable here.
            using var either = CancellationTokenSource.CreateLinkedTokenSource(stopped, cancellationToken);
            ready = await _connection.WaitReadyAsync(_operationTimeout, either.Token).ConfigureAwait(false);
            cancellationToken.ThrowIfCancellationRequested();
        }
        else
        {
            ready = await _connection.WaitReadyAsync(_operationTimeout, stopped).ConfigureAwait(false);
        }

        return Result(ready, started, canAbandon, stopped: stopped);
    }

    private ReadinessResult Result(bool ready, long started, bool canAbandon, TimeSpan waitedAlready = default, CancellationToken stopped = default)
    {
        var waited = _realTime.GetElapsedTime(started) + waitedAlready;
        if (ready && waited <= s_grace)
        {
            return new(ReadinessOutcome.Ready);
        }

        if (ready && canAbandon && _operationTimeout - waited > s_grace)
        {
            // What is left of the operation timeout, after which the caller is let go and the call observed.
            return new(ReadinessOutcome.ReadyWithin, _operationTimeout - waited);
        }

        if (!ready && !stopped.IsCancellationRequested)
        {
            // A whole operation timeout without a connection: as good as a command timing out (or the credentials were refused).
            // Refused (the port or the credentials): said so at once. Otherwise a whole operation timeout went by.
            var failure = _connection.ConnectFailure is { } refused
                && (RedisErrorClassifier.Classify(refused) == RedisFailureKind.Authentication || RedisConnection.IsRefusal(refused))
                ? refused
                : RedisConnectPendingException.WaitedOutFor(_operationTimeout);
            return new(ReadinessOutcome.NoConnection, Failure: failure);
        }

        return new(ReadinessOutcome.Skip);
    }
}
