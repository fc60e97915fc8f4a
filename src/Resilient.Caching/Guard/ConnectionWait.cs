using Resilient.Caching.Connection;
using Resilient.Caching.Outages;

namespace Resilient.Caching.Guard;

/// <summary>How a wait for a connection ended, and so what the call may do next.</summary>
internal enum ConnectionWaitOutcome
{
    /// <summary>A connection was there at once (or within a moment): call Redis with the client's own timeout.</summary>
    Ready,

    /// <summary>A connection came after a while: call Redis, but let the caller go at <see cref="ConnectionWaitResult.Deadline"/>.</summary>
    ReadyWithin,

    /// <summary>No connection within the operation timeout, or the credentials were refused: a Redis failure (<see cref="ConnectionWaitResult.Failure"/>).</summary>
    NoConnection,

    /// <summary>
    /// Redis stopped being used while the caller waited (a window opened), or the connection came too late to call
    /// Redis within the caller's budget: skip Redis, as inside the window.
    /// </summary>
    Skip,
}

/// <summary>What a wait for a connection came to.</summary>
internal readonly record struct ConnectionWaitResult(ConnectionWaitOutcome Outcome, TimeSpan Deadline = default, Exception? Failure = null);

/// <summary>
/// Waits for a connection when there is none (a cold start, a reconnect), within the operation timeout, and released
/// at once when Redis stops being used. A call may then call Redis only with time left: a synchronous one cannot be
/// abandoned, so it needs a whole operation timeout; an asynchronous one gets what is left of it.
/// </summary>
internal sealed class ConnectionWait
{
    // A call that had to wait longer than this for a connection takes its fallback rather than a whole operation
    // timeout on top of the wait.
    private static readonly TimeSpan s_grace = TimeSpan.FromMilliseconds(50);

    private readonly IRedisConnection _connection;
    private readonly WindowController _deployment;
    private readonly TimeSpan _operationTimeout;

    // Bounds on waits for the network run on real time; the window runs on the application's clock.
    private readonly TimeProvider _realTime = TimeProvider.System;

    public ConnectionWait(IRedisConnection connection, WindowController deployment, TimeSpan operationTimeout)
    {
        _connection = connection;
        _deployment = deployment;
        _operationTimeout = operationTimeout;
    }

    /// <summary>Waits for a synchronous caller.</summary>
    public ConnectionWaitResult Wait()
    {
        var started = _realTime.GetTimestamp();
        var ready = _connection.WaitReady(_operationTimeout, _deployment.StoppedUsingRedis);
        return Result(ready, started, canAbandon: false);
    }

    /// <summary>Waits for an asynchronous caller; the caller's token is honoured.</summary>
    /// <param name="canAbandon">The call may be left running when the caller is let go (it holds none of the caller's buffers).</param>
    /// <param name="cancellationToken">The caller's token.</param>
    public async ValueTask<ConnectionWaitResult> WaitAsync(bool canAbandon, CancellationToken cancellationToken)
    {
        var started = _realTime.GetTimestamp();
        bool ready;
        if (cancellationToken.CanBeCanceled)
        {
            // Rare (a cold start, a reconnect): a linked token is affordable here.
            using var either = CancellationTokenSource.CreateLinkedTokenSource(_deployment.StoppedUsingRedis, cancellationToken);
            ready = await _connection.WaitReadyAsync(_operationTimeout, either.Token).ConfigureAwait(false);
            cancellationToken.ThrowIfCancellationRequested();
        }
        else
        {
            ready = await _connection.WaitReadyAsync(_operationTimeout, _deployment.StoppedUsingRedis).ConfigureAwait(false);
        }

        return Result(ready, started, canAbandon);
    }

    private ConnectionWaitResult Result(bool ready, long started, bool canAbandon)
    {
        var waited = _realTime.GetElapsedTime(started);
        if (ready && waited <= s_grace)
        {
            return new(ConnectionWaitOutcome.Ready);
        }

        if (ready && canAbandon && _operationTimeout - waited > s_grace)
        {
            // What is left of the operation timeout, after which the caller is let go and the call observed.
            return new(ConnectionWaitOutcome.ReadyWithin, _operationTimeout - waited);
        }

        if (!ready && !_deployment.StoppedUsingRedis.IsCancellationRequested)
        {
            // A whole operation timeout without a connection: as good as a command timing out (or the credentials were refused).
            var failure = _connection.ConnectFailure is { } refused && RedisErrorClassifier.Classify(refused) == RedisFailureKind.Authentication
                ? refused
                : RedisConnectPendingException.WaitedOutFor(_operationTimeout);
            return new(ConnectionWaitOutcome.NoConnection, Failure: failure);
        }

        return new(ConnectionWaitOutcome.Skip);
    }
}
