using Microsoft.Extensions.Logging;

namespace Resilient.Caching.Diagnostics;

/// <summary>
/// Puts the cache's name (<c>resilient_caching.cache</c>: <c>"default"</c> or the service key) in a scope around every
/// line, so that the lines of two caches in one application — a session cache and a data cache — are told apart.
/// </summary>
internal sealed class CacheNameLogger(ILogger inner, string cacheName) : ILogger
{
    private readonly KeyValuePair<string, object?>[] _scope = [new(ResilientCacheMetrics.CacheTag, cacheName)];

    public IDisposable? BeginScope<TState>(TState state)
        where TState : notnull => inner.BeginScope(state);

    public bool IsEnabled(LogLevel logLevel) => inner.IsEnabled(logLevel);

    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
    {
        if (!inner.IsEnabled(logLevel))
        {
            return;
        }

        using (inner.BeginScope(_scope))
        {
            inner.Log(logLevel, eventId, state, exception, formatter);
        }
    }
}
