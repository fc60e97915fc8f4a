using Microsoft.Extensions.Logging;

namespace Resilient.Caching.IntegrationTests.Infrastructure;

/// <summary>
/// A logger provider that keeps each record as a text sink (console, file) would write it: level, category, event
/// id, the formatted message, every structured value, and the attached exception's ToString(). Logs everything.
/// The unit tests link this file: keep it self-contained.
/// </summary>
internal sealed class TextLoggerProvider : ILoggerProvider
{
    private readonly List<(int Id, string Text)> _records = [];

    public ILogger CreateLogger(string categoryName) => new TextLogger(this, categoryName);

    public int Count(int eventId)
    {
        lock (_records)
        {
            return _records.Count(r => r.Id == eventId);
        }
    }

    public int[] Ids()
    {
        lock (_records)
        {
            return [.. _records.Select(r => r.Id)];
        }
    }

    public string Text()
    {
        lock (_records)
        {
            return string.Join('\n', _records.Select(r => r.Text));
        }
    }

    public void Dispose()
    {
    }

    private sealed class TextLogger(TextLoggerProvider provider, string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            var values = state is IEnumerable<KeyValuePair<string, object?>> pairs ? string.Join("; ", pairs.Select(p => $"{p.Key}={p.Value}")) : string.Empty;
            var text = $"{logLevel} {category}[{eventId.Id}] {formatter(state, exception)} | {values}\n{exception}";
            lock (provider._records)
            {
                provider._records.Add((eventId.Id, text));
            }
        }
    }
}
