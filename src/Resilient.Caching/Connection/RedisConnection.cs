using Resilient.Caching.Outages;
using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using StackExchange.Redis;

namespace Resilient.Caching.Connection;

/// <summary>
/// The one Redis connection of a registration, shared by the distributed cache, the output-cache store and the
/// health check. It is ours (built from the settings, with socket tuning, read by threads of its own) unless the
/// application supplied <see cref="Microsoft.Extensions.Caching.StackExchangeRedis.RedisCacheOptions.ConnectionMultiplexerFactory"/>;
/// only ours is ever reset or closed here. It knows nothing of the unavailable window: the guard decides when to
/// wait for it, and for how long.
/// </summary>
internal sealed partial class RedisConnection : IRedisConnection, IDisposable
{
    // How often a waiter looks again at a multiplexer that exists but is not connected yet.
    private static readonly TimeSpan s_readyPoll = TimeSpan.FromMilliseconds(20);

    /// <summary>StackExchange.Redis's feature flag for reader and writer threads of its own.</summary>
    internal const string DedicatedThreadsFlag = "DedicatedThreads";

    private static readonly TimeSpan s_probeExpiry = TimeSpan.FromSeconds(10);

    // How often a probe asks again while the client knows no primary (a failover switching).
    private static readonly TimeSpan s_primaryPoll = TimeSpan.FromMilliseconds(50);

    private readonly Func<Task<IConnectionMultiplexer>>? _userFactory;
    private readonly ConfigurationOptions? _configuration;
    private readonly ILogger _logger;
    private readonly TimeProvider _timeProvider;
    private readonly Lock _gate = new();
    private Task<IConnectionMultiplexer>? _current;
    private Task<IConnectionMultiplexer>? _ready;
    private Exception? _connectFailure;
    private int _generation;
    private long _refusalCheckedAt;
    private bool _disposed;

    /// <param name="options">The settings.</param>
    /// <param name="logger">Where connect failures and socket-option problems are logged.</param>
    /// <param name="timeProvider">The clock of the bounded waits.</param>
    public RedisConnection(ResilientRedisCacheOptions options, ILogger logger, TimeProvider timeProvider)
    {
        _logger = logger;
        _timeProvider = timeProvider;
        _userFactory = options.ConnectionMultiplexerFactory;
        if (_userFactory is null)
        {
            _configuration = ConnectionSettings.Build(options, logger);

            // Replies are read and written on threads the client owns, not on the application's thread pool: an
            // application that starves its pool (sync over async, blocking I/O) must not make a healthy Redis look
            // dead. A process-wide switch of StackExchange.Redis 3.x, read when a connection is made.
            if (options.DedicatedThreads)
            {
                ConnectionMultiplexer.SetFeatureFlag(DedicatedThreadsFlag, true);
            }
        }
    }

    /// <summary>A multiplexer of ours was created (true) or retired by a reset or dispose (false); for <see cref="ResilientRedisConnections"/>.</summary>
    internal event Action<Task<IConnectionMultiplexer>, bool>? MultiplexerChanged;

    public bool IsOwned => _userFactory is null;

    public int Generation => Volatile.Read(ref _generation);

    public bool IsReady => Volatile.Read(ref _ready) is not null;

    public Exception? ConnectFailure => Volatile.Read(ref _connectFailure);

    public IDatabase? Database => Volatile.Read(ref _ready) is { IsCompletedSuccessfully: true } ready ? ready.Result.GetDatabase() : null;

    /// <summary>The redacted effective configuration string (no password), for the settings log line.</summary>
    public string? RedactedConfiguration => _configuration?.ToString(includePassword: false);

    /// <summary>
    /// The factory handed to the inner stock cache and output-cache store: the connected multiplexer, or a failure at
    /// once. It never waits: the guard has waited, within its bound, before it called the inner component.
    /// </summary>
    public Task<IConnectionMultiplexer> GetMultiplexerAsync() =>
        Volatile.Read(ref _ready) ?? Task.FromException<IConnectionMultiplexer>(
            new RedisConnectPendingException("No Redis connection at the moment; the cache does not wait for one here."));

    public async ValueTask<bool> WaitReadyAsync(TimeSpan timeout, CancellationToken released)
    {
        var started = _timeProvider.GetTimestamp();
        while (NextWait(started, timeout, released) is { } wait)
        {
            try
            {
                await (wait.Connecting.IsCompleted
                    ? Task.Delay(wait.For, _timeProvider, released)
                    : wait.Connecting.WaitAsync(wait.For, _timeProvider, released)).ConfigureAwait(false);
            }
            catch (Exception exception) when (exception is TimeoutException or OperationCanceledException || wait.Connecting.IsFaulted)
            {
                // Look at the state again: NextWait decides.
            }
        }

        return IsReady;
    }

    public bool WaitReady(TimeSpan timeout, CancellationToken released)
    {
        var started = _timeProvider.GetTimestamp();
        while (NextWait(started, timeout, released) is { } wait)
        {
            try
            {
                if (wait.Connecting.IsCompleted)
                {
                    released.WaitHandle.WaitOne(wait.For);
                }
                else
                {
                    wait.Connecting.Wait(wait.For, released);
                }
            }
            catch (Exception exception) when (exception is OperationCanceledException || wait.Connecting.IsFaulted)
            {
                // Look at the state again: NextWait decides.
            }
        }

        return IsReady;
    }

    public async Task ProbeAsync(TimeSpan budget, RedisKey key)
    {
        var started = _timeProvider.GetTimestamp();
        if (!await WaitReadyAsync(budget, CancellationToken.None).ConfigureAwait(false))
        {
            throw RefusedAlready ? ConnectFailure! : RedisConnectPendingException.WaitedOutFor(budget);
        }

        var multiplexer = await Volatile.Read(ref _ready)!.ConfigureAwait(false);
        while (true)
        {
            var left = budget - _timeProvider.GetElapsedTime(started);
            var write = multiplexer.GetDatabase().StringSetAsync(key, "1", s_probeExpiry);
            try
            {
                await write.WaitAsync(left > TimeSpan.Zero ? left : TimeSpan.Zero, _timeProvider).ConfigureAwait(false);
                return;
            }
            catch (RedisConnectionException between) when (AwaitsPrimary(between) && budget - _timeProvider.GetElapsedTime(started) > s_primaryPoll)
            {
                // Connected to replicas and to no primary: a failover is switching (the old primary just became a
                // replica, the client has not seen the new one yet). The probe asks again within its budget, rather
                // than call a switch of a few milliseconds an outage.
                await Task.Delay(s_primaryPoll, _timeProvider).ConfigureAwait(false);
            }
            catch (TimeoutException) when (!write.IsCompleted)
            {
                _ = write.ContinueWith(static t => _ = t.Exception, CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted, TaskScheduler.Default);
                throw;
            }
        }
    }

    /// <summary>The client's "no connection (requires writable - not eligible for replica)": it knows replicas, and no primary at this moment.</summary>
    private static bool AwaitsPrimary(RedisConnectionException exception) =>
        exception.Message.Contains("not eligible for replica", StringComparison.Ordinal);

    /// <summary>Starts connecting in the background so that the first request finds a connection, and warns once if that first connect fails.</summary>
    public void Warm()
    {
        _ = GetOrCreate().ContinueWith(
            static (task, state) =>
            {
                var connection = (RedisConnection)state!;
                if (task.IsFaulted)
                {
                    Log.ConnectFailed(connection._logger, task.Exception, task.Exception?.InnerException?.Message ?? "unknown");
                }
                else if (task.IsCompletedSuccessfully && !connection.TryMarkReady(task))
                {
                    // With AbortOnConnectFail=false the connect does not fault when Redis is unreachable (refused
                    // port, unresolvable host, TLS mismatch…): it returns a multiplexer that is not connected and
                    // keeps retrying in the background. That is a failed first connect too.
                    Log.ConnectFailed(connection._logger, null, "no connection to " + string.Join(", ", task.Result.GetEndPoints().Select(static e => e is DnsEndPoint dns ? $"{dns.Host}:{dns.Port}" : e.ToString()))
                        + " within the connect timeout (StackExchange.Redis keeps retrying in the background)");
                }
            },
            this,
            CancellationToken.None,
            TaskContinuationOptions.ExecuteSynchronously,
            TaskScheduler.Default);
    }

    public void Reset(bool connectAgain = false)
    {
        if (!IsOwned)
        {
            return;
        }

        Task<IConnectionMultiplexer>? old;
        lock (_gate)
        {
            old = _current;
            if (old is null)
            {
                return;
            }

            _current = null;
            Volatile.Write(ref _ready, null);
            Volatile.Write(ref _connectFailure, null);

            // The connection made next may be asked about a refusal at once, however recently the last one was.
            Volatile.Write(ref _refusalCheckedAt, 0);
            Interlocked.Increment(ref _generation);
        }

        MultiplexerChanged?.Invoke(old, false);
        Abort(old);

        // Connect afresh at once, in the background: its reconnects (every half second) are what notice Redis is back
        // before the window has elapsed. Nobody waits for it here.
        if (connectAgain)
        {
            TryGetOrCreate();
        }
    }

    /// <summary>Closes our multiplexer without waiting for Redis: a frozen or unreachable Redis must not hold up shutdown.</summary>
    public void Dispose()
    {
        Task<IConnectionMultiplexer>? old;
        lock (_gate)
        {
            if (_disposed)
            {
                return;
            }

            _disposed = true;
            old = _current;
            _current = null;
            Volatile.Write(ref _ready, null);
        }

        if (IsOwned && old is not null)
        {
            MultiplexerChanged?.Invoke(old, false);
            Abort(old);
        }
    }

    private bool TryMarkReady(Task<IConnectionMultiplexer> connecting)
    {
        if (!connecting.IsCompletedSuccessfully)
        {
            return false;
        }

        if (!connecting.Result.IsConnected)
        {
            NoteWhyNotConnected(connecting.Result);
            return false;
        }

        var handedOut = false;
        lock (_gate)
        {
            if (ReferenceEquals(_current, connecting) && !ReferenceEquals(_ready, connecting))
            {
                Volatile.Write(ref _ready, connecting);
                Volatile.Write(ref _connectFailure, null);
                handedOut = true;
            }
        }

        if (handedOut)
        {
            // The first report of this multiplexer's topology (its events were hooked when it was made).
            TopologyChanged?.Invoke(connecting.Result);
        }

        return true;
    }

    /// <summary>Starts connecting unless shut down; what it comes to is observed by whoever waits, or by the client's events.</summary>
    private void TryGetOrCreate()
    {
        if (Volatile.Read(ref _disposed))
        {
            return;
        }

        try
        {
            _ = GetOrCreate().ContinueWith(static t => _ = t.Exception, CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted, TaskScheduler.Default);
        }
        catch (ObjectDisposedException)
        {
            // Shut down meanwhile.
        }
    }

    private Task<IConnectionMultiplexer> GetOrCreate()
    {
        var current = Volatile.Read(ref _current);
        if (current is not null && !current.IsFaulted && !current.IsCanceled)
        {
            return current;
        }

        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            current = _current;
            if (current is null || current.IsFaulted || current.IsCanceled)
            {
                current = (_userFactory is not null ? _userFactory() : ConnectionMultiplexer.ConnectAsync(_configuration!, new ConnectLog(this)).ContinueWith(
                    static task => (IConnectionMultiplexer)task.GetAwaiter().GetResult(),
                    CancellationToken.None,
                    TaskContinuationOptions.ExecuteSynchronously,
                    TaskScheduler.Default)).ContinueWith(
                    (task, state) =>
                    {
                        var multiplexer = task.GetAwaiter().GetResult();
                        ((RedisConnection)state!).Attach(multiplexer);
                        return multiplexer;
                    },
                    this,
                    CancellationToken.None,
                    TaskContinuationOptions.ExecuteSynchronously,
                    TaskScheduler.Default);
                Volatile.Write(ref _current, current);
                if (IsOwned)
                {
                    MultiplexerChanged?.Invoke(current, true);
                }

                _ = WatchUntilConnectedAsync(current);
            }

            return current;
        }
    }

    /// <summary>
    /// The one decision of both waits: null when there is nothing more to wait for (connected, out of time, released,
    /// or the credentials were refused), otherwise what to wait on and for how long. A multiplexer that exists but is
    /// not connected reconnects on its own: look again shortly.
    /// </summary>
    private (Task<IConnectionMultiplexer> Connecting, TimeSpan For)? NextWait(long started, TimeSpan timeout, CancellationToken released)
    {
        var connecting = GetOrCreate();
        if (TryMarkReady(connecting))
        {
            return null;
        }

        var left = timeout - _timeProvider.GetElapsedTime(started);
        if (left <= TimeSpan.Zero || released.IsCancellationRequested || RefusedAlready)
        {
            return null;
        }

        // A connect still under way may hang for its whole connect timeout against a port nothing listens on, and one
        // that gave up keeps retrying in the background without saying why: ask the port directly, and look again shortly.
        _ = CheckRefusedAsync();

        return (connecting, Min(left, s_readyPoll));
    }

    // Waiting longer will not help: the same credentials will be refused again.
    private bool CredentialsRefused => ConnectFailure is { } failure && RedisErrorClassifier.Classify(failure) == RedisFailureKind.Authentication;

    // Nor for a server that refused the credentials or the connection itself: the next attempt (in the background)
    // clears this when it succeeds.
    private bool RefusedAlready => ConnectFailure is { } failure && (IsRefusal(failure) || RedisErrorClassifier.Classify(failure) == RedisFailureKind.Authentication);

    private static TimeSpan Min(TimeSpan a, TimeSpan b) => a < b ? a : b;

    private static void Abort(Task<IConnectionMultiplexer>? connection)
    {

        // Off the caller's path, and without letting queued commands complete: every command still waiting on the
        // old multiplexer fails at once (its caller gets its fallback), and nothing waits for a Redis that may never
        // answer.
        _ = connection?.ContinueWith(
            static task =>
            {
                try
                {
                    if (task.IsCompletedSuccessfully)
                    {
                        task.Result.Close(allowCommandsToComplete: false);
                    }
                }
                catch (Exception exception) when (exception is ObjectDisposedException or RedisException or IOException or SocketException)
                {
                    // Closing a connection that is already broken: nothing to tell anyone.
                }
            },
            CancellationToken.None,
            TaskContinuationOptions.None,
            TaskScheduler.Default);
    }
}
