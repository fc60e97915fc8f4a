using StackExchange.Redis;

namespace Resilient.Caching;

/// <summary>
/// The Redis connections (multiplexers) the resilient caches of this application create, for tools that must know
/// each one — OpenTelemetry's StackExchange.Redis instrumentation first of all. A cache replaces its multiplexer
/// after a failure, so a tool told about the first one only would go blind after the first outage: subscribe here
/// and it is told about every one, for as long as it is in use.
/// </summary>
/// <remarks>
/// Subscribers get the multiplexer itself because that is what such tools take: OpenTelemetry's
/// <c>AddConnection(IConnectionMultiplexer)</c> registers a profiler on it and reads back the commands it sent, which
/// no narrower handle allows. Commands sent through it bypass the cache: no unavailable window, no operation timeout of
/// ours, no record of writes to replay after an outage. Observe it; read and write the cache through
/// <c>IDistributedCache</c> (or <see cref="ResilientDistributedCache"/>), and never close or dispose the multiplexer:
/// the cache owns it and retires it itself.
/// </remarks>
/// <example>
/// <code>
/// builder.Services.AddOpenTelemetry().WithTracing(tracing => tracing
///     .AddRedisInstrumentation()
///     .ConfigureRedisInstrumentation((services, redis) => services.GetRequiredService&lt;ResilientRedisConnections&gt;()
///         .Subscribe((_, connection) => redis.AddConnection(connection))));
/// </code>
/// </example>
public sealed class ResilientRedisConnections
{
    private readonly Lock _lock = new();
    private readonly List<Func<string, IConnectionMultiplexer, IDisposable?>> _subscribers = [];

    // Every multiplexer in use, with what each subscriber returned for it (disposed when the multiplexer is retired).
    private readonly Dictionary<Task<IConnectionMultiplexer>, Entry> _live = [];

    /// <summary>
    /// Calls <paramref name="onConnection"/> with the cache name (<c>"default"</c> or the service key) and the
    /// multiplexer, for every multiplexer in use now and every one created later (after a reset, a new one).
    /// What it returns is disposed when that multiplexer is retired, so that the subscriber lets go of it.
    /// </summary>
    /// <param name="onConnection">
    /// Called once per multiplexer; keep it short (it may run on a connecting thread). The multiplexer is for
    /// observing (instrumentation), not for cache traffic: see the remarks on <see cref="ResilientRedisConnections"/>.
    /// </param>
    /// <returns>Ends the subscription and disposes what <paramref name="onConnection"/> returned for the multiplexers still in use.</returns>
    /// <remarks>Multiplexers an application supplies through <c>ConnectionMultiplexerFactory</c> are its own and are not reported.</remarks>
    public IDisposable Subscribe(Func<string, IConnectionMultiplexer, IDisposable?> onConnection)
    {
        ArgumentNullException.ThrowIfNull(onConnection);
        lock (_lock)
        {
            _subscribers.Add(onConnection);
            foreach (var entry in _live.Values)
            {
                entry.Tell(onConnection);
            }
        }

        return new Subscription(this, onConnection);
    }

    /// <summary>Follows a cache's connection: its multiplexers are reported once connected (or not) and retired with it.</summary>
    internal void Track(string cacheName, Connection.RedisConnection connection) =>
        connection.MultiplexerChanged += (multiplexer, created) =>
        {
            if (created)
            {
                lock (_lock)
                {
                    _live[multiplexer] = new Entry(cacheName);
                }

                // Reported once the client hands it out (it does so without waiting for Redis: abortConnect=false).
                _ = multiplexer.ContinueWith(Report, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
            }
            else
            {
                Entry? entry;
                lock (_lock)
                {
                    _live.Remove(multiplexer, out entry);
                }

                entry?.Retire();
            }
        };

    private void Report(Task<IConnectionMultiplexer> multiplexer)
    {
        if (!multiplexer.IsCompletedSuccessfully)
        {
            lock (_lock)
            {
                _live.Remove(multiplexer);
            }

            return;
        }

        lock (_lock)
        {
            // Retired before it was even handed out: nobody needs to hear of it.
            if (_live.TryGetValue(multiplexer, out var entry))
            {
                entry.Connected(multiplexer.Result, _subscribers);
            }
        }
    }

    private void Unsubscribe(Func<string, IConnectionMultiplexer, IDisposable?> onConnection)
    {
        lock (_lock)
        {
            _subscribers.Remove(onConnection);
            foreach (var entry in _live.Values)
            {
                entry.Forget(onConnection);
            }
        }
    }

    private sealed class Entry(string cacheName)
    {
        private readonly Dictionary<Func<string, IConnectionMultiplexer, IDisposable?>, IDisposable?> _told = [];
        private IConnectionMultiplexer? _multiplexer;

        public void Connected(IConnectionMultiplexer multiplexer, List<Func<string, IConnectionMultiplexer, IDisposable?>> subscribers)
        {
            _multiplexer = multiplexer;
            foreach (var subscriber in subscribers)
            {
                Tell(subscriber);
            }
        }

        public void Tell(Func<string, IConnectionMultiplexer, IDisposable?> subscriber)
        {
            if (_multiplexer is not null && !_told.ContainsKey(subscriber))
            {
                _told[subscriber] = subscriber(cacheName, _multiplexer);
            }
        }

        public void Forget(Func<string, IConnectionMultiplexer, IDisposable?> subscriber)
        {
            if (_told.Remove(subscriber, out var handle))
            {
                handle?.Dispose();
            }
        }

        public void Retire()
        {
            foreach (var handle in _told.Values)
            {
                handle?.Dispose();
            }

            _told.Clear();
        }
    }

    private sealed class Subscription(ResilientRedisConnections owner, Func<string, IConnectionMultiplexer, IDisposable?> onConnection) : IDisposable
    {
        private int _disposed;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _disposed, 1) == 0)
            {
                owner.Unsubscribe(onConnection);
            }
        }
    }
}
