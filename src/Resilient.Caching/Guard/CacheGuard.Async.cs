using System.Runtime.CompilerServices;
using Resilient.Caching.Storage;

namespace Resilient.Caching.Guard;

/// <summary>The asynchronous path: the same gate, connection, call and failure judgement as the synchronous one.</summary>
internal sealed partial class CacheGuard
{
    // Bounds on waits for the network run on real time; the window runs on the application's clock.
    private static readonly TimeProvider s_realTime = TimeProvider.System;

    /// <summary>Runs a call asynchronously.</summary>
    public ValueTask<TResult> RunAsync<TState, TResult>(CacheCall<TState, TResult> call, CacheTarget target, TState state, CancellationToken cancellationToken) =>
        RunAsync(call, target, state, spent: TimeSpan.Zero, mayRetry: true, cancellationToken);

    /// <summary>Runs a call asynchronously. Pooled state machines: a call that waits for Redis reuses a box instead of allocating one.</summary>
    /// <param name="call">What to call.</param>
    /// <param name="target">What it is about.</param>
    /// <param name="state">Its arguments.</param>
    /// <param name="cancellationToken">The caller's token.</param>
    /// <param name="spent">How much of the caller's operation timeout an earlier attempt spent (a retry after a blip).</param>
    /// <param name="mayRetry">Whether a failure that may be a blip may be retried once its verdict is in.</param>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<TResult> RunAsync<TState, TResult>(
        CacheCall<TState, TResult> call, CacheTarget target, TState state, TimeSpan spent, bool mayRetry, CancellationToken cancellationToken)
    {
        // Nothing is awaited before this returns on the short-circuit path, so it completes synchronously:
        // no allocation while the window is open.
        var entry = Enter(call.Operation, target, out var shard);
        var deadline = spent == TimeSpan.Zero ? Timeout.InfiniteTimeSpan : _wait.OperationTimeout - spent;
        if (entry == Entry.AwaitVerdict)
        {
            var waited = await _wait.WaitForVerdictAsync(shard.Controller.Verdict, !call.HoldsCallerMemory, spent, cancellationToken).ConfigureAwait(false);
            entry = AfterVerdict(call.Operation, target, waited, shard, out shard);
            deadline = Earliest(deadline, waited.Bound);
        }

        if (entry == Entry.Replica)
        {
            return await FromReplicaAsync(call, target, shard, state, cancellationToken).ConfigureAwait(false);
        }

        if (entry == Entry.NeedsConnection)
        {
            var waited = await _wait.WaitAsync(canAbandon: !call.HoldsCallerMemory, cancellationToken).ConfigureAwait(false);
            deadline = Earliest(deadline, AfterConnectionWait(call.Operation, target, waited));
        }

        if (entry == Entry.Fallback || deadline == TimeSpan.Zero)
        {
            return call.Fallback;
        }

        if (!await _ledger.MayWriteAsync(call.Operation, target).ConfigureAwait(false))
        {
            // Computed from a made-up miss while the key holds its real value: not applied, so that value stays intact.
            _metrics.Skipped(call.Operation);
            return call.Fallback;
        }

        var attempt = Begin(call.Operation, target);
        Task<TResult>? abandoned = null;
        try
        {
            var inner = call.InvokeAsync!(state, cancellationToken);
            TResult result;
            if (WaitsWithToken(inner.IsCompleted, call.HoldsCallerMemory, cancellationToken) || (deadline != Timeout.InfiniteTimeSpan && !inner.IsCompleted))
            {
                abandoned = inner.AsTask();
                result = await abandoned.WaitAsync(deadline, s_realTime, cancellationToken).ConfigureAwait(false);
            }
            else
            {
                result = await inner.ConfigureAwait(false);
            }

            Succeeded(attempt, call.Outcome(result));
            return result;
        }
        catch (Exception exception) when (TakesFallback(
            attempt, exception, abandoned, cancellationToken, out var followUp, out var failed, call.FromReplica is not null, mayRetry, deadline))
        {
            if (followUp == FollowUp.ReadReplica)
            {
                return await FromReplicaAsync(call, target, failed!, state, cancellationToken).ConfigureAwait(false);
            }

            if (followUp == FollowUp.RetryAfterVerdict)
            {
                // What may be a blip (a reset connection): once the probe says so, call again within what is left.
                var used = spent + Elapsed(attempt);
                var waited = await _wait.WaitForVerdictAsync(failed!.Controller.Verdict, !call.HoldsCallerMemory, used, cancellationToken).ConfigureAwait(false);
                if (waited.Outcome != ReadinessOutcome.Skip)
                {
                    var spentBeforeRetry = waited.Outcome == ReadinessOutcome.Ready ? TimeSpan.Zero : _wait.OperationTimeout - waited.Bound;
                    return await RunAsync(call, target, state, spentBeforeRetry, mayRetry: false, cancellationToken).ConfigureAwait(false);
                }

                _ledger.NotReached(call.Operation, target);
            }

            return call.Fallback;
        }
    }

    /// <summary>The earlier of two bounds, where <see cref="Timeout.InfiniteTimeSpan"/> is no bound and <see cref="TimeSpan.Zero"/> "none left".</summary>
    private static TimeSpan Earliest(TimeSpan a, TimeSpan b) =>
        a == Timeout.InfiniteTimeSpan ? b : b == Timeout.InfiniteTimeSpan ? a : a < b ? a : b;

    /// <summary>
    /// Whether the caller waits for a pending inner call with its own token. The stock provider stops looking at
    /// the token once a command is sent; waiting with it hands control back to a caller that gives up
    /// (SessionOptions.IOTimeout, an aborted request) while Redis hangs. Not for calls that hold the caller's
    /// buffers (ReadOnlySequence, IBufferWriter, PipeWriter): the caller recycles those as soon as it regains
    /// control, while the abandoned call would still read or write them. Those still pass the token inward.
    /// </summary>
    private static bool WaitsWithToken(bool completed, bool holdsCallerMemory, CancellationToken cancellationToken) =>
        !completed && cancellationToken.CanBeCanceled && !holdsCallerMemory;

    /// <summary>The asynchronous <see cref="FromReplica"/>.</summary>
    private async ValueTask<TResult> FromReplicaAsync<TState, TResult>(CacheCall<TState, TResult> call, CacheTarget target, Topology.Shard shard, TState state, CancellationToken cancellationToken)
    {
        if (call.FromReplica is { } fromReplica && await _replicas.ReadAsync(target, shard, cancellationToken).ConfigureAwait(false) is { } read)
        {
            return fromReplica(state, read.Data);
        }

        Skip(call.Operation, target, shard);
        return call.Fallback;
    }
}
