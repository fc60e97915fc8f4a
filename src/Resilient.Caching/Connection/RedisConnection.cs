using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using StackExchange.Redis;

namespace Resilient.Caching.Connection;

/// <summary>
/// The one Redis connection of a registration, shared by the distributed cache and the output-cache store.
/// It is ours (built from the settings, with socket tuning) unless the application supplied
/// <see cref="Microsoft.Extensions.Caching.StackExchangeRedis.RedisCacheOptions.ConnectionMultiplexerFactory"/>;
/// only ours is ever reset or disposed here.
/// </summary>
internal sealed class RedisConnection : IResettableConnection, IDisposable
{
    private readonly Func<Task<IConnectionMultiplexer>>? _userFactory;
    private readonly ConfigurationOptions? _configuration;
    private readonly ILogger _logger;
    private readonly TimeSpan _connectWait;
    private readonly CacheAvailability? _availability;
    private readonly Lock _gate = new();
    private Task<IConnectionMultiplexer>? _current;
    private Task<IConnectionMultiplexer>? _waitedInVain;
    private Task<IConnectionMultiplexer>? _handedOut;
    private int _generation;
    private bool _disposed;

    /// <param name="options">The settings.</param>
    /// <param name="logger">Where connect failures and socket-option problems are logged.</param>
    /// <param name="availability">The window of the registration: who may wait for a connection depends on it.</param>
    public RedisConnection(ResilientRedisCacheOptions options, ILogger logger, CacheAvailability? availability = null)
    {
        _logger = logger;
        _connectWait = options.OperationTimeout;
        _availability = availability;
        _userFactory = options.ConnectionMultiplexerFactory;
        if (_userFactory is null)
        {
            _configuration = BuildConfiguration(options, logger);
        }
    }

    public bool IsOwned => _userFactory is null;

    public int Generation => Volatile.Read(ref _generation);

    /// <summary>The redacted effective configuration string (no password), for the settings log line.</summary>
    public string? RedactedConfiguration => _configuration?.ToString(includePassword: false);

    /// <summary>
    /// The factory handed to the inner stock cache and output-cache store. A caller waits for a connection that
    /// is still being made for at most the operation timeout (StackExchange.Redis may take the whole connect
    /// timeout, even when the port refuses); the connect itself goes on for the next caller.
    /// </summary>
    public Task<IConnectionMultiplexer> GetMultiplexerAsync()
    {
        var current = GetOrCreate();
        if (current.IsCompletedSuccessfully && current.Result.IsConnected)
        {
            return HandOut(current);
        }

        // Nobody waits for the connection inside the window, nor for an attempt another caller already waited for
        // in vain while the window is not open yet (its failure is on the way): the stock cache calls this factory
        // under its own connection lock, so callers already on their way when the first one timed out would
        // otherwise wait one operation timeout each, one after the other.
        var waitedInVain = ReferenceEquals(Volatile.Read(ref _waitedInVain), current);
        var skip = _availability is not null && (_availability.RetryAfter > TimeSpan.Zero || (waitedInVain && _availability.IsAvailable));

        // Otherwise this is a probe (or the first call): it connects afresh rather than reuse an attempt made during
        // the outage that is not connected or that a caller already waited for in vain. Such an attempt may never
        // complete (its handshake was lost) or retries with back-off; a fresh one uses a healed network at once.
        if (!skip && IsOwned && (current.IsCompleted || waitedInVain))
        {
            current = Replace(current);
        }

        if (current.IsCompleted)
        {
            return HandOut(current);
        }

        return skip
            ? Task.FromException<IConnectionMultiplexer>(new RedisConnectPendingException("No Redis connection yet, and Redis is being skipped; still connecting in the background."))
            : WaitBoundedAsync(current);
    }

    private async Task<IConnectionMultiplexer> WaitBoundedAsync(Task<IConnectionMultiplexer> connecting)
    {
        try
        {
            var multiplexer = await connecting.WaitAsync(_connectWait, _availability?.TimeProvider ?? TimeProvider.System).ConfigureAwait(false);
            _ = HandOut(connecting);
            return multiplexer;
        }
        catch (TimeoutException exception) when (!connecting.IsCompleted)
        {
            Volatile.Write(ref _waitedInVain, connecting);
            throw new RedisConnectPendingException(
                $"No Redis connection within {_connectWait.TotalMilliseconds:0} ms (the operation timeout); still connecting in the background.", exception);
        }
    }

    private Task<IConnectionMultiplexer> HandOut(Task<IConnectionMultiplexer> connection)
    {
        if (!ReferenceEquals(Volatile.Read(ref _handedOut), connection))
        {
            Volatile.Write(ref _handedOut, connection);
        }

        return connection;
    }

    /// <summary>Drops a stale connection attempt (ours) and starts a new one.</summary>
    private Task<IConnectionMultiplexer> Replace(Task<IConnectionMultiplexer> stale)
    {
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (ReferenceEquals(_current, stale))
            {
                _current = null;

                // A multiplexer handed out already may be held by an inner cache: that generation is over. One
                // never handed out (still connecting, or made by the start-up warm-up or an attempt whose waiters
                // gave up) is held by nobody, so nothing needs rebuilding and the current inner caches stay valid.
                if (ReferenceEquals(Volatile.Read(ref _handedOut), stale))
                {
                    Interlocked.Increment(ref _generation);
                }

                DisposeLater(stale);
            }
        }

        return GetOrCreate();
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
                current = _userFactory is not null ? _userFactory() : ConnectionMultiplexer.ConnectAsync(_configuration!).ContinueWith(
                    static task => (IConnectionMultiplexer)task.GetAwaiter().GetResult(),
                    CancellationToken.None,
                    TaskContinuationOptions.ExecuteSynchronously,
                    TaskScheduler.Default);
                Volatile.Write(ref _current, current);
            }

            return current;
        }
    }

    /// <summary>
    /// Starts connecting in the background so that the first request finds a connection, and warns once if that
    /// first connect fails.
    /// </summary>
    public void Warm()
    {
        _ = GetOrCreate().ContinueWith(
            static (task, state) =>
            {
                var logger = (ILogger)state!;
                if (task.IsFaulted)
                {
                    Log.ConnectFailed(logger, task.Exception, task.Exception?.InnerException?.Message ?? "unknown");
                }
                else if (task.IsCompletedSuccessfully && !task.Result.IsConnected)
                {
                    // With AbortOnConnectFail=false the connect does not fault when Redis is unreachable (refused
                    // port, unresolvable host, TLS mismatch…): it returns a multiplexer that is not connected and
                    // keeps retrying in the background. That is a failed first connect too.
                    Log.ConnectFailed(logger, null, "no connection to " + string.Join(", ", task.Result.GetEndPoints().Select(static e => e is DnsEndPoint dns ? $"{dns.Host}:{dns.Port}" : e.ToString()))
                        + " within the connect timeout (StackExchange.Redis keeps retrying in the background)");
                }
            },
            _logger,
            CancellationToken.None,
            TaskContinuationOptions.ExecuteSynchronously,
            TaskScheduler.Default);
    }

    public void Reset()
    {
        if (!IsOwned)
        {
            return;
        }

        Task<IConnectionMultiplexer>? old;
        lock (_gate)
        {
            old = _current;
            _current = null;
            Interlocked.Increment(ref _generation);
        }

        DisposeLater(old);
    }

    public void Dispose()
    {
        Task<IConnectionMultiplexer>? old;
        lock (_gate)
        {
            _disposed = true;
            old = _current;
            _current = null;
        }

        if (IsOwned)
        {
            DisposeLater(old);
        }
    }

    /// <summary>
    /// Our settings on top of the user's: a clone of <c>ConfigurationOptions</c> (never mutate theirs) or the
    /// parsed <c>Configuration</c> string.
    /// </summary>
    internal static ConfigurationOptions BuildConfiguration(ResilientRedisCacheOptions options, ILogger logger)
    {
        var configuration = Configuration.RedisConnectionString.Build(options);

        // Start even when Redis is down, and keep reconnecting in the background.
        configuration.AbortOnConnectFail = false;

        // While disconnected, fail a command at once instead of queueing it for the sync timeout: the window
        // turns that failure into a fast miss.
        configuration.BacklogPolicy = BacklogPolicy.FailFast;
        configuration.ConnectTimeout = ToMilliseconds(options.ConnectTimeout);
        configuration.SyncTimeout = ToMilliseconds(options.OperationTimeout);
        configuration.AsyncTimeout = ToMilliseconds(options.OperationTimeout);
        configuration.TcpKeepAlive = options.SocketKeepAlive;

        // StackExchange.Redis checks async timeouts on its heartbeat (1 s by default); a sub-second operation
        // timeout needs a finer one to mean what it says.
        if (options.OperationTimeout < TimeSpan.FromSeconds(2))
        {
            configuration.HeartbeatInterval = TimeSpan.FromMilliseconds(Math.Clamp(options.OperationTimeout.TotalMilliseconds / 4, 50, 1000));
        }

        configuration.BeforeSocketConnect = SocketTuning.CreateHook(options, configuration.BeforeSocketConnect, logger);
        return configuration;
    }

    private static int ToMilliseconds(TimeSpan value) => (int)Math.Clamp(value.TotalMilliseconds, 1, int.MaxValue);

    private static void DisposeLater(Task<IConnectionMultiplexer>? connection)
    {
        // Off the caller's path: closing a multiplexer waits for its sockets.
        _ = connection?.ContinueWith(
            static task =>
            {
                try
                {
                    task.Result.Dispose();
                }
                catch (Exception exception) when (exception is ObjectDisposedException or RedisException or IOException or SocketException)
                {
                    // Closing a connection that is already broken: nothing to tell anyone.
                }
            },
            CancellationToken.None,
            TaskContinuationOptions.OnlyOnRanToCompletion,
            TaskScheduler.Default);
    }
}
