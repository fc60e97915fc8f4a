using Microsoft.Extensions.Logging;
using Resilient.Caching.Diagnostics;

namespace Resilient.Caching;

/// <summary>The public notifications of window transitions, for applications that page someone or flip a feature flag.</summary>
public sealed partial class CacheAvailability
{
    /// <summary>The name of the unkeyed registration's cache in events, metrics, traces and log scopes.</summary>
    internal const string DefaultName = "default";

    private EventHandler<CacheWindowOpenedEventArgs>? _opened;
    private EventHandler<CacheWindowClosedEventArgs>? _closed;

    /// <summary>
    /// Raised when a confirmed Redis failure opens the unavailable window (once per outage, with
    /// <see cref="CacheWindowOpenedEventArgs.IsProbeFailure"/> false) and when a probe fails during the outage (true).
    /// A blip — a suspected failure a probe dismisses within the operation timeout — raises nothing.
    /// </summary>
    /// <remarks>
    /// Handlers run synchronously on the thread that saw the failure, which may be a caller's: hand slow work (an
    /// HTTP call to a pager) off to a queue. An exception a handler throws is logged (Warning, event 30) and
    /// swallowed; it never reaches a cache caller.
    /// </remarks>
    public event EventHandler<CacheWindowOpenedEventArgs>? WindowOpened
    {
        add => _opened += value;
        remove => _opened -= value;
    }

    /// <summary>Raised when a probe succeeds and the outage ends (not after a blip).</summary>
    /// <remarks>Handlers run synchronously on the probe's thread; an exception they throw is logged and swallowed.</remarks>
    public event EventHandler<CacheWindowClosedEventArgs>? WindowClosed
    {
        add => _closed += value;
        remove => _closed -= value;
    }

    /// <summary>Gets the name of the cache: the service key of a keyed registration, <c>"default"</c> for the unkeyed one.</summary>
    public string Name { get; }

    internal void RaiseOpened(ILogger logger, CacheOperation operation, Exception exception, bool authentication, bool probeFailure, string? serverAddress)
    {
        if (_opened is not { } handlers)
        {
            return;
        }

        var args = new CacheWindowOpenedEventArgs(
            Name, probeFailure, authentication, operation.Name(), Redaction.Describe(exception), Redaction.ForOutput(exception), Window, TimeProvider.GetUtcNow(), serverAddress);
        foreach (var handler in handlers.GetInvocationList())
        {
            try
            {
                ((EventHandler<CacheWindowOpenedEventArgs>)handler)(this, args);
            }
            catch (Exception error)
            {
                Log.EventHandlerFailed(logger, Redaction.ForOutput(error), nameof(WindowOpened));
            }
        }
    }

    internal void RaiseClosed(ILogger logger, TimeSpan outage, long skipped, string? serverAddress)
    {
        if (_closed is not { } handlers)
        {
            return;
        }

        var args = new CacheWindowClosedEventArgs(Name, outage, skipped, TimeProvider.GetUtcNow(), serverAddress);
        foreach (var handler in handlers.GetInvocationList())
        {
            try
            {
                ((EventHandler<CacheWindowClosedEventArgs>)handler)(this, args);
            }
            catch (Exception error)
            {
                Log.EventHandlerFailed(logger, Redaction.ForOutput(error), nameof(WindowClosed));
            }
        }
    }
}
