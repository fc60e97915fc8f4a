namespace Resilient.Caching.Connection;

/// <summary>
/// An inner stock component (Microsoft's cache or output-cache store) for the current connection generation. The
/// stock components keep the first multiplexer they get for good, so after a reset a new one is built over the fresh
/// multiplexer; the one it replaces is retired (disposed where that stops background work of its own).
/// </summary>
internal sealed class Generational<T>
    where T : class
{
    private readonly IRedisConnection _connection;
    private readonly Func<int, T> _create;
    private readonly Action<T>? _retire;
    private Entry _current;

    public Generational(IRedisConnection connection, Func<int, T> create, Action<T>? retire = null)
    {
        _connection = connection;
        _create = create;
        _retire = retire;
        var generation = connection.Generation;
        _current = new Entry(generation, create(generation));
    }

    /// <summary>Gets the component for the current generation, building it on the first use after a reset.</summary>
    public T Current
    {
        get
        {
            var current = Volatile.Read(ref _current);
            var generation = _connection.Generation;
            if (current.Generation == generation)
            {
                return current.Value;
            }

            var replacement = new Entry(generation, _create(generation));
            var winner = Interlocked.CompareExchange(ref _current, replacement, current);
            if (winner != current)
            {
                _retire?.Invoke(replacement.Value);
                return winner.Value;
            }

            _retire?.Invoke(current.Value);
            return replacement.Value;
        }
    }

    /// <summary>Gets the component built last, without building a new one (for disposal).</summary>
    public T Latest => Volatile.Read(ref _current).Value;

    private sealed record Entry(int Generation, T Value);
}
