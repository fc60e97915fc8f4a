using Resilient.Caching.Connection;
using Resilient.Caching.Storage;
using Resilient.Caching.Topology;

namespace Resilient.Caching.Outages;

/// <summary>What a failure means: whose fault, which window, an outage or a suspicion, and whether the connection may go.</summary>
/// <param name="Kind">Its classification; <see cref="RedisFailureKind.None"/> for an error that is not Redis's availability (it propagates).</param>
/// <param name="Shard">The window it belongs to.</param>
/// <param name="IsOutage">An outage at once, rather than a suspicion a probe must confirm first.</param>
/// <param name="MayReset">The connection may be dropped and made afresh.</param>
/// <param name="IsStall">
/// A timeout the application's own stall explains (its thread pool starved, or the reply already received but not yet
/// read): it says nothing about Redis, so no window, no reset, no probe.
/// </param>
internal readonly record struct FailureVerdict(RedisFailureKind Kind, Shard Shard, bool IsOutage, bool MayReset, bool IsStall = false)
{
    /// <summary>Gets a value indicating whether the failure is Redis's (swallowed, counted), not the caller's (propagated).</summary>
    public bool IsRedisFailure => Kind != RedisFailureKind.None;
}

/// <summary>
/// Judges a failed call: the one place that decides whether an error is Redis's availability (swallowed) or not
/// (propagated), whether it is an outage at once or a suspicion to check, which window it belongs to, and whether the
/// connection may be reset. It changes no state.
/// </summary>
internal sealed class FailureJudge
{
    private readonly ShardMap _shards;
    private readonly IRedisConnection _connection;
    private readonly Func<bool> _isThreadPoolStarved;
    private readonly RecentAnswers _answers;

    /// <param name="shards">Which window a key belongs to.</param>
    /// <param name="connection">Whether the connection a call used is still the current one.</param>
    /// <param name="isThreadPoolStarved">Whether the application's thread pool is starved now; measured (<see cref="ThreadPoolLatency"/>) when null.</param>
    /// <param name="operationTimeout">The operation timeout: a queue wait of half of it explains a timeout.</param>
    public FailureJudge(ShardMap shards, IRedisConnection connection, Func<bool>? isThreadPoolStarved = null, TimeSpan? operationTimeout = null)
    {
        var timeout = operationTimeout ?? TimeSpan.FromSeconds(5);
        var stall = timeout / 2;
        _answers = new RecentAnswers(timeout);
        _shards = shards;
        _connection = connection;
        if (isThreadPoolStarved is null)
        {
            ThreadPoolLatency.EnsureStarted();
        }

        _isThreadPoolStarved = isThreadPoolStarved ?? (() => ThreadPoolLatency.IsStarved(stall));
    }

    /// <summary>Judges what a call threw.</summary>
    /// <param name="exception">What it threw.</param>
    /// <param name="target">What it was about (its shard).</param>
    /// <param name="generation">The connection generation it used.</param>
    public FailureVerdict Judge(Exception exception, in CacheTarget target, int generation)
    {
        var current = generation == _connection.Generation;
        var kind = RedisErrorClassifier.Classify(exception, connectionWasReset: !current);
        // Refused credentials are the deployment's problem, whichever shard saw them first.
        var shard = kind == RedisFailureKind.Authentication ? _shards.Deployment : ShardOf(target, exception);

        // Only a failure of the current connection says anything about it: one of a connection already reset does not
        // reset the fresh one (a probe may be using it). With more than one server the client fails over by itself,
        // and the connections to the servers that are fine stay; nor does a starved pool's timeout say the socket is dead.
        var stall = IsStarvation(exception);
        return new FailureVerdict(kind, shard, IsOutage(exception, kind), !stall && MayReset(exception, kind, current, shard), stall);
    }

    /// <summary>
    /// Whether a transport failure of the current connection lets it go, to be made afresh. Not when there was no
    /// connection to begin with (<see cref="RedisConnectPendingException"/>): the one being made keeps trying in the
    /// background, and its success is what starts the next check early; dropping it would leave nothing trying until
    /// the window has elapsed.
    /// </summary>
    public bool MayReset(Exception exception, RedisFailureKind kind, bool current, Shard shard) =>
        current && kind == RedisFailureKind.Transport && exception is not RedisConnectPendingException && CanReset(shard);

    /// <summary>
    /// Whether a failure is an outage at once, or a suspicion a probe must confirm first: a reset, a refusal or a
    /// closed connection may be a blip (CLIENT KILL, a load balancer recycling a connection, a quick restart), a
    /// READONLY reply is what a primary says in the instant it becomes a replica in a failover, a redirect the client
    /// did not follow is two nodes naming each other in that instant, and a timeout while the application's own thread
    /// pool is starved says nothing about the path to Redis.
    /// </summary>
    public bool IsOutage(Exception exception, RedisFailureKind kind) => kind switch
    {
        RedisFailureKind.ServerUnavailable => !RedisErrorClassifier.IsReadOnlyReply(exception) && !RedisErrorClassifier.IsRedirect(exception),
        RedisFailureKind.Transport => exception switch
        {
            RedisConnectPendingException pending => pending.WaitedOut,
            TimeoutException => !IsStarvation(exception),
            _ => false,
        },
        _ => true,
    };

    /// <summary>A call of this cache got Redis's answer (its start, a <see cref="System.Diagnostics.Stopwatch"/> timestamp): evidence for <see cref="IsStarvation"/>.</summary>
    public void Answered(long startedAt) => _answers.Answered(startedAt);

    /// <summary>
    /// A timeout the application's stall explains: the client's own report says bytes were received and not yet read
    /// (<c>in: N</c> or <c>in-pipe: N</c> with N &gt; 0) — Redis answered; or work waits (or waited within two seconds)
    /// in its thread pool's queue for half the operation timeout or more (<see cref="ThreadPoolLatency"/>) while Redis
    /// still answers other calls (<see cref="RecentAnswers"/>): a frozen Redis starves a pool of synchronous callers
    /// too, and that starvation must not hide it.
    /// </summary>
    public bool IsStarvation(Exception exception) =>
        exception is TimeoutException and not RedisConnectPendingException
        && (RepliesUnread(exception.Message) || (_isThreadPoolStarved() && _answers.AnsweredRecently()));

    /// <summary>Whether StackExchange.Redis's timeout report shows bytes received but not yet read.</summary>
    internal static bool RepliesUnread(string message) => CountAfter(message, "in: ") > 0 || CountAfter(message, "in-pipe: ") > 0;

    private static long CountAfter(string message, string label)
    {
        var at = 0;
        while ((at = message.IndexOf(label, at, StringComparison.Ordinal)) >= 0)
        {
            // "in: " must be the whole label, not the end of another ("last-in: ", "cur-in: ").
            if (at == 0 || message[at - 1] is ' ' or ',' or '(')
            {
                var digits = message.AsSpan(at + label.Length);
                var length = 0;
                while (length < digits.Length && char.IsAsciiDigit(digits[length]))
                {
                    length++;
                }

                return long.TryParse(digits[..length], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var count) ? count : 0;
            }

            at += label.Length;
        }

        return 0;
    }

    /// <summary>A failure that came before the operation timeout (a reset, a refusal): a replica may still answer in time.</summary>
    public static bool IsFastFailure(Exception exception) => exception is not (TimeoutException or OperationCanceledException);

    /// <summary>
    /// The window a failure belongs to: the shard of the key in a cluster, unless there was no connection at all
    /// (that is the whole deployment's); the deployment's otherwise.
    /// </summary>
    public Shard ShardOf(in CacheTarget target, Exception exception) =>
        exception is RedisConnectPendingException ? _shards.Deployment : _shards.ShardOf(target.Kind, target.Key) ?? _shards.Deployment;

    /// <summary>Only a single server's connection is reset: with replicas or a cluster the client reconnects each server by itself.</summary>
    public bool CanReset(Shard shard) => shard.IsDeployment && !_shards.IsReplicated;
}
