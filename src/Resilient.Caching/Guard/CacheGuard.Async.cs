using System.Runtime.CompilerServices;
using Resilient.Caching.Storage;

namespace Resilient.Caching.Guard;

/// <summary>The asynchronous path: the same gate, connection, call and failure judgement as the synchronous one.</summary>
internal sealed partial class CacheGuard
{
    // Bounds on waits for the network run on real time; the window runs on the application's clock.
    private static readonly TimeProvider s_realTime = TimeProvider.System;

    /// <summary>Runs a call asynchronously. Pooled state machines: a call that waits for Redis reuses a box instead of allocating one.</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    public async ValueTask<TResult> RunAsync<TState, TResult>(CacheCall<TState, TResult> call, CacheTarget target, TState state, CancellationToken cancellationToken)
    {
        // Nothing is awaited before this returns on the short-circuit path, so it completes synchronously:
        // no allocation while the window is open.
        var entry = Enter(call.Operation, target, out var shard);
        if (entry == Entry.Replica)
        {
            return await FromReplicaAsync(call, target, shard, state, cancellationToken).ConfigureAwait(false);
        }

        var deadline = Timeout.InfiniteTimeSpan;
        if (entry == Entry.NeedsConnection)
        {
            var waited = await _wait.WaitAsync(canAbandon: !call.HoldsCallerMemory, cancellationToken).ConfigureAwait(false);
            deadline = AfterConnectionWait(call.Operation, target, waited);
        }

        if (entry == Entry.Fallback || deadline == TimeSpan.Zero)
        {
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
        catch (Exception exception) when (TakesFallback(attempt, exception, abandoned, cancellationToken, deadline, readsReplicaNext: call.FromReplica is not null))
        {
            return RetriesOnReplica(attempt, exception, call.FromReplica is not null) is { } replica
                ? await FromReplicaAsync(call, target, replica, state, cancellationToken).ConfigureAwait(false)
                : call.Fallback;
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
