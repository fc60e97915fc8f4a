using Microsoft.Extensions.Logging;
using Resilient.Caching.Connection;
using Resilient.Caching.Diagnostics;
using Resilient.Caching.Outages;
using Resilient.Caching.Recovery;
using Resilient.Caching.Storage;
using Resilient.Caching.Topology;

namespace Resilient.Caching.Guard;

/// <summary>How the guard treats what it cannot hand to Redis.</summary>
/// <param name="IgnoreExceptions">Redis failures become the fallback (the setting); otherwise they propagate, and the window throws <see cref="CacheUnavailableException"/>.</param>
/// <param name="LogIgnoredExceptions">Swallowed errors are logged with their exception (the setting).</param>
internal readonly record struct GuardSettings(bool IgnoreExceptions, bool LogIgnoredExceptions);

/// <summary>
/// The one path every cache operation takes, for the distributed cache, the output-cache store and the health check:
/// the gate (may Redis be called now, for this key's shard?), the connection (wait for one only when there is none),
/// the call, and what a failure means. Everything else is asked of the types that own it: the window of each shard
/// (<see cref="WindowController"/>), what a failure means (<see cref="FailureJudge"/>), what an outage does
/// (<see cref="OutageLifecycle"/>), replica reads (<see cref="ReplicaReader"/>), what a skipped call leaves behind
/// (<see cref="OutageLedger"/>).
/// </summary>
/// <remarks>
/// Every call ends within the operation timeout plus the client's timeout granularity: a call waits for a connection
/// only when there is none, and then calls Redis only with time left; probes run off the callers' path; when the
/// window opens, commands still waiting on the connection are failed at once and waiting callers are released.
/// The synchronous path is here, the asynchronous one in <c>CacheGuard.Async.cs</c>.
/// </remarks>
internal sealed partial class CacheGuard
{
    private readonly ShardMap _shards;
    private readonly IRedisConnection _connection;
    private readonly ReadinessWait _wait;
    private readonly FailureJudge _judge;
    private readonly OutageLifecycle _outages;
    private readonly ReplicaReader _replicas;
    private readonly OutageLedger _ledger;
    private readonly ResilientCacheMetrics _metrics;
    private readonly GuardSettings _settings;

    public CacheGuard(
        ShardMap shards,
        IRedisConnection connection,
        ReadinessWait wait,
        FailureJudge judge,
        OutageLifecycle outages,
        ReplicaReader replicas,
        OutageLedger ledger,
        ResilientCacheMetrics metrics,
        CacheAvailability availability,
        ILogger logger,
        GuardSettings settings)
    {
        _shards = shards;
        _connection = connection;
        _wait = wait;
        _judge = judge;
        _outages = outages;
        _replicas = replicas;
        _ledger = ledger;
        _metrics = metrics;
        Availability = availability;
        Logger = logger;
        _settings = settings;
    }

    private enum Entry
    {
        Proceed,
        NeedsConnection,
        Fallback,

        /// <summary>The primary is out, but a replica may serve the read.</summary>
        Replica,

        /// <summary>A suspected failure is being checked: wait for the verdict, then enter again.</summary>
        AwaitVerdict,
    }

    /// <summary>What a caller whose call failed with a Redis failure does next.</summary>
    private enum FollowUp
    {
        /// <summary>Take the fallback (what the call left behind is remembered).</summary>
        Fallback,

        /// <summary>The read failed fast and a replica may serve it.</summary>
        ReadReplica,

        /// <summary>The call failed fast on what may be a blip: wait for the verdict, and call again if it was one.</summary>
        RetryAfterVerdict,
    }

    public CacheAvailability Availability { get; }

    public ILogger Logger { get; }

    public TResult Run<TState, TResult>(CacheCall<TState, TResult> call, in CacheTarget target, TState state) => Run(call, target, state, mayRetry: true);

    private TResult Run<TState, TResult>(CacheCall<TState, TResult> call, in CacheTarget target, TState state, bool mayRetry)
    {
        var entry = Enter(call.Operation, target, out var shard);
        if (entry == Entry.AwaitVerdict)
        {
            entry = AfterVerdict(call.Operation, target, ReadinessWait.WaitForVerdict(shard.Controller.Verdict), shard, out shard);
        }

        if (entry == Entry.Replica)
        {
            return FromReplica(call, target, shard, state);
        }

        if (entry == Entry.Fallback || (entry == Entry.NeedsConnection && AfterConnectionWait(call.Operation, target, _wait.Wait()) == TimeSpan.Zero))
        {
            return call.Fallback;
        }

        if (!_ledger.MayWrite(call.Operation, target))
        {
            // Computed from a made-up miss while the key holds its real value: not applied, so that value stays intact.
            _metrics.Skipped(call.Operation);
            return call.Fallback;
        }

        var attempt = Begin(call.Operation, target);
        try
        {
            var result = call.Invoke!(state);
            Succeeded(attempt, call.Outcome(result));
            return result;
        }
        catch (Exception exception) when (TakesFallback(attempt, exception, abandoned: null, CancellationToken.None, out var followUp, out var failed, readsReplica: call.FromReplica is not null, mayRetry))
        {
            switch (followUp)
            {
                case FollowUp.ReadReplica:
                    return FromReplica(call, target, failed!, state);
                case FollowUp.RetryAfterVerdict when ReadinessWait.WaitForVerdict(failed!.Controller.Verdict, Elapsed(attempt)).Outcome == ReadinessOutcome.Ready:
                    return Run(call, target, state, mayRetry: false);
                case FollowUp.RetryAfterVerdict:
                    _ledger.NotReached(call.Operation, target);
                    return call.Fallback;
                default:
                    return call.Fallback;
            }
        }
    }

    public CacheUnavailableException CreateUnavailableException() => CreateUnavailableException(_shards.Deployment);

    private CacheUnavailableException CreateUnavailableException(Shard shard)
    {
        var retryAfter = shard.Controller.RetryAfter;
        return new CacheUnavailableException(
            $"Redis is unavailable; the cache skips it for another {retryAfter.TotalSeconds:0.###} s.", Availability.LastError)
        {
            RetryAfter = retryAfter,
        };
    }

    /// <summary>
    /// The gate: the window's verdict, and whether a connection is there. While no shard is out this is three
    /// volatile reads (the deployment's window, whether any shard is out, the connection); the key is hashed to its
    /// shard only while one is.
    /// </summary>
    private Entry Enter(CacheOperation operation, in CacheTarget target, out Shard shard)
    {
        shard = _shards.Deployment;
        var gate = shard.Controller.TryEnter();
        if (gate == WindowController.Gate.Proceed && _shards.AnyShardOut && _shards.ShardOf(target.Kind, target.Key) is { } keyShard)
        {
            shard = keyShard;
            gate = keyShard.Controller.TryEnter();
        }

        if (gate == WindowController.Gate.Proceed)
        {
            return _connection.IsReady ? Entry.Proceed : Entry.NeedsConnection;
        }

        if (gate == WindowController.Gate.AwaitVerdict)
        {
            // A read a replica can serve needs no verdict; anything else waits for it.
            return _replicas.CanRead(operation, target, shard) ? Entry.Replica : Entry.AwaitVerdict;
        }

        if (gate == WindowController.Gate.StartProbe)
        {
            _outages.StartProbe(shard);
        }

        return _replicas.CanRead(operation, target, shard) ? Entry.Replica : Skip(operation, target, shard);
    }

    /// <summary>
    /// Enters again once the wait for a verdict is over: a blip closed the window (Redis is used as if nothing had
    /// happened); an outage, or no verdict in time, skips Redis as inside the window.
    /// </summary>
    private Entry AfterVerdict(CacheOperation operation, in CacheTarget target, in ReadinessResult waited, Shard waitedOn, out Shard shard)
    {
        var entry = waited.Outcome == ReadinessOutcome.Skip ? Entry.AwaitVerdict : Enter(operation, target, out waitedOn);
        shard = waitedOn;

        // A replica read gets a budget of its own: only for a caller that has not waited beyond a moment.
        return entry is not (Entry.AwaitVerdict or Entry.Replica) || (entry == Entry.Replica && waited.Outcome == ReadinessOutcome.Ready)
            ? entry
            : Skip(operation, target, shard);
    }

    private Entry Skip(CacheOperation operation, in CacheTarget target, Shard shard)
    {
        _metrics.Skipped(operation);
        _ledger.NotReached(operation, target);
        return _settings.IgnoreExceptions ? Entry.Fallback : throw CreateUnavailableException(shard);
    }

    /// <summary>The caller's result from a replica's answer, or the fallback (a skip, remembered) when there is none.</summary>
    private TResult FromReplica<TState, TResult>(CacheCall<TState, TResult> call, in CacheTarget target, Shard shard, TState state)
    {
        if (call.FromReplica is { } fromReplica && _replicas.TryRead(target, shard, out var data))
        {
            return fromReplica(state, data);
        }

        Skip(call.Operation, target, shard);
        return call.Fallback;
    }

    /// <summary>
    /// What the call may do after waiting for a connection: <see cref="Timeout.InfiniteTimeSpan"/> to call Redis with
    /// the client's own timeout, a positive bound after which the caller is let go, or <see cref="TimeSpan.Zero"/> for
    /// "take the fallback" (the failure recorded, or Redis skipped).
    /// </summary>
    private TimeSpan AfterConnectionWait(CacheOperation operation, in CacheTarget target, in ReadinessResult waited)
    {
        switch (waited.Outcome)
        {
            case ReadinessOutcome.Ready:
                return Timeout.InfiniteTimeSpan;
            case ReadinessOutcome.ReadyWithin:
                return waited.Deadline;
            case ReadinessOutcome.NoConnection:
                if (!TakesFallback(Begin(operation, target), waited.Failure!, abandoned: null, CancellationToken.None, out _, out _))
                {
                    throw waited.Failure!;
                }

                return TimeSpan.Zero;
            default:
                Skip(operation, target, _shards.Deployment);
                return TimeSpan.Zero;
        }
    }

    private Attempt Begin(CacheOperation operation, in CacheTarget target) =>
        new(operation, target, _connection.Generation, _metrics.Start(), System.Diagnostics.Stopwatch.GetTimestamp());

    private static TimeSpan Elapsed(in Attempt attempt) => System.Diagnostics.Stopwatch.GetElapsedTime(attempt.Started);

    private void Succeeded(in Attempt attempt, CacheOutcome outcome)
    {
        _ledger.Reached(attempt.Operation, attempt.Target);
        _judge.Answered(attempt.Started);
        _metrics.Completed(attempt.Operation, outcome, attempt.StartTimestamp);
    }

    /// <summary>
    /// What a failed call means, for a call the caller waited for and for one it abandoned alike: judges the error,
    /// tells the outage lifecycle, remembers what the call left behind, counts. Answers whether the caller takes its
    /// fallback (true) or sees the exception (false). Runs as an exception filter, before the stack unwinds.
    /// </summary>
    /// <param name="attempt">The call.</param>
    /// <param name="exception">What it threw.</param>
    /// <param name="abandoned">The inner call, when the caller stopped waiting for it.</param>
    /// <param name="cancellationToken">The caller's token.</param>
    /// <param name="followUp">What the caller does next when it takes the fallback.</param>
    /// <param name="failed">The shard of the failure, for the follow-up.</param>
    /// <param name="readsReplica">The caller can take a replica's answer.</param>
    /// <param name="mayRetry">The caller may call again after a blip (its first attempt).</param>
    /// <param name="deadline">Our own bound after a wait, if any.</param>
    /// <remarks>
    /// A call whose follow-up is a replica read or a retry is not remembered here: the caller remembers it when the
    /// follow-up fails too.
    /// </remarks>
    private bool TakesFallback(
        in Attempt attempt, Exception exception, Task? abandoned, CancellationToken cancellationToken, out FollowUp followUp, out Shard? failed,
        bool readsReplica = false, bool mayRetry = false, TimeSpan deadline = default)
    {
        followUp = FollowUp.Fallback;
        failed = null;
        if (exception is TimeoutException && deadline > TimeSpan.Zero && abandoned is { IsCompleted: false })
        {
            // Our own bound after a slow connect, not Redis timing out: let the caller go, and let the call's real
            // outcome count when it comes.
            ObserveAbandoned(abandoned, attempt);
            _metrics.Skipped(attempt.Operation);
            _ledger.NotReached(attempt.Operation, attempt.Target);
            return _settings.IgnoreExceptions;
        }

        if (exception is OperationCanceledException && cancellationToken.IsCancellationRequested)
        {
            if (abandoned is { IsCompleted: false })
            {
                // The caller gave up; Redis has not answered yet. Its answer still counts, off the caller's path.
                ObserveAbandoned(abandoned, attempt);
            }

            return false;
        }

        _metrics.Completed(attempt.Operation, CacheOutcome.Error, attempt.StartTimestamp);
        var verdict = _judge.Judge(exception, attempt.Target, attempt.Generation);
        if (!verdict.IsRedisFailure)
        {
            return false;
        }

        if (verdict.IsStall)
        {
            // Remembered first: the lifecycle applies what a stalled write left unknown right away, off this path.
            _ledger.NotReached(attempt.Operation, attempt.Target);
            _outages.RecordFailure(attempt.Operation, exception, verdict);
            return _settings.IgnoreExceptions;
        }

        _outages.RecordFailure(attempt.Operation, exception, verdict);
        failed = verdict.Shard;
        if (readsReplica && FailureJudge.IsFastFailure(exception) && _replicas.CanRead(attempt.Operation, attempt.Target, verdict.Shard))
        {
            followUp = FollowUp.ReadReplica;
        }
        else if (mayRetry && !verdict.IsOutage && FailureJudge.IsFastFailure(exception) && verdict.Shard.Controller.Verdict is { IsCompleted: false })
        {
            followUp = FollowUp.RetryAfterVerdict;
        }
        else
        {
            _ledger.NotReached(attempt.Operation, attempt.Target);
        }

        return _settings.IgnoreExceptions;
    }

    private void ObserveAbandoned(Task abandoned, Attempt attempt)
    {
        _ = abandoned.ContinueWith(
            static (task, state) =>
            {
                var (guard, attempt) = ((CacheGuard, Attempt))state!;
                if (task.Exception?.InnerException is not { } exception)
                {
                    return;
                }

                if (!guard.TakesFallback(attempt, exception, abandoned: null, CancellationToken.None, out _, out _) && guard._settings.LogIgnoredExceptions)
                {
                    Log.AbandonedOperationFailed(guard.Logger, exception, attempt.Operation.Name(), Redaction.Describe(exception));
                }
            },
            (this, attempt),
            CancellationToken.None,
            TaskContinuationOptions.ExecuteSynchronously,
            TaskScheduler.Default);
    }

    /// <param name="Operation">What the call is.</param>
    /// <param name="Target">What it is about.</param>
    /// <param name="Generation">The connection generation it used.</param>
    /// <param name="StartTimestamp">When it started, for the duration histogram; 0 when nobody listens.</param>
    /// <param name="Started">When it started (real time), for the caller's budget.</param>
    private readonly record struct Attempt(CacheOperation Operation, CacheTarget Target, int Generation, long StartTimestamp, long Started);
}
