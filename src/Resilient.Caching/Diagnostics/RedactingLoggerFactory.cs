using Microsoft.Extensions.Logging;

namespace Resilient.Caching.Diagnostics;

/// <summary>
/// The logger factory handed to the stock components we host (the output-cache store logs its garbage-collection
/// failures with the Redis exception attached): their lines go through <see cref="Redaction"/> like ours — message,
/// structured values and exception.
/// </summary>
internal sealed class RedactingLoggerFactory(ILoggerFactory inner) : ILoggerFactory
{
    public ILogger CreateLogger(string categoryName) => new RedactingLogger(inner.CreateLogger(categoryName));

    public void AddProvider(ILoggerProvider provider) => inner.AddProvider(provider);

    // The application's factory is the application's to dispose.
    public void Dispose()
    {
    }

    private sealed class RedactingLogger(ILogger inner) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => inner.BeginScope(state);

        public bool IsEnabled(LogLevel logLevel) => inner.IsEnabled(logLevel);

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (!inner.IsEnabled(logLevel))
            {
                return;
            }

            var message = Redaction.Redact(formatter(state, exception));
            List<KeyValuePair<string, object?>> values = state is IEnumerable<KeyValuePair<string, object?>> pairs
                ? [.. pairs.Select(static p => p.Value is null or ValueType ? p : new KeyValuePair<string, object?>(p.Key, Redaction.Redact(p.Value.ToString())))]
                : [];
            inner.Log(logLevel, eventId, values, Redaction.ForOutput(exception), (_, _) => message);
        }
    }
}
