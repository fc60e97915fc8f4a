using Microsoft.Extensions.Logging;
using Resilient.Caching.Diagnostics;
using Resilient.Caching.Recovery;
using Resilient.Caching.Topology;

namespace Resilient.Caching.Outages;

/// <summary>
/// The one channel an outage is told through: each transition is logged, counted, traced and raised as an event here
/// and nowhere else, in that order (whoever handles an event finds the log line written). Only the outage lifecycle
/// calls it.
/// </summary>
internal sealed class OutageNotifications
{
    private readonly CacheAvailability _availability;
    private readonly ResilientCacheMetrics _metrics;
    private readonly ILogger _logger;
    private readonly bool _logExceptions;
    private readonly double _windowSeconds;

    /// <param name="availability">The public view whose events are raised.</param>
    /// <param name="metrics">The meter.</param>
    /// <param name="logger">The cache's logger.</param>
    /// <param name="logExceptions">Whether swallowed errors are logged with their exception (the setting <c>LogIgnoredExceptions</c>).</param>
    public OutageNotifications(CacheAvailability availability, ResilientCacheMetrics metrics, ILogger logger, bool logExceptions)
    {
        _availability = availability;
        _metrics = metrics;
        _logger = logger;
        _logExceptions = logExceptions;
        _windowSeconds = availability.Window.TotalSeconds;
    }

    /// <summary>The window opened (<see cref="WindowController.Transition.Opened"/>) or a probe failed and reopened it (<see cref="WindowController.Transition.Reopened"/>).</summary>
    public void Opened(Shard shard, CacheOperation operation, Exception exception, RedisFailureKind kind, WindowController.Transition transition)
    {
        var reopened = transition == WindowController.Transition.Reopened;
        _metrics.Transition(transition, shard.IsDeployment ? null : shard.ServerAddress);
        var logged = _logExceptions ? exception : null;
        var reason = Redaction.Describe(exception);

        var authentication = kind == RedisFailureKind.Authentication;
        var deploymentWide = shard.IsDeployment;
        if (authentication)
        {
            Log.AuthenticationFailed(_logger, logged, operation.Name(), reason, _windowSeconds);
        }
        else if (!shard.IsDeployment)
        {
            if (reopened)
            {
                Log.ShardProbeFailed(_logger, logged, shard.ServerAddress, shard.Slots, operation.Name(), reason, _windowSeconds);
            }
            else
            {
                Log.ShardWindowOpened(_logger, logged, shard.ServerAddress, shard.Slots, operation.Name(), reason, _windowSeconds);
            }
        }
        else if (reopened)
        {
            Log.ProbeFailed(_logger, logged, operation.Name(), reason, _windowSeconds);
        }
        else
        {
            Log.WindowOpened(_logger, logged, operation.Name(), reason, _windowSeconds);
        }

        ResilientCacheActivitySource.WindowOpened(_availability.Name, operation, exception, reopened);
        if (deploymentWide && transition == WindowController.Transition.Opened)
        {
            _availability.RaiseChanged(false);
        }

        _availability.RaiseOpened(_logger, operation, exception, authentication, reopened, deploymentWide ? null : shard.ServerAddress);
    }

    /// <summary>A failure that may be a blip is being checked (Debug: nothing above it unless the probe confirms it).</summary>
    public void Suspected(Shard shard, CacheOperation operation, Exception exception)
    {
        if (_logExceptions)
        {
            Log.FailureSuspected(_logger, exception, operation.Name(), shard.Describe(Redaction.Describe(exception)));
        }
    }

    /// <summary>A timeout the application's own stall explains (Debug): not an outage.</summary>
    public void Stalled(CacheOperation operation, Exception exception)
    {
        if (_logExceptions)
        {
            Log.ApplicationStall(_logger, exception, operation.Name(), Redaction.Describe(exception));
        }
    }

    /// <summary>Another failure while Redis is already out (Debug).</summary>
    public void FailedWhileOut(string what, Exception exception)
    {
        if (_logExceptions)
        {
            Log.ErrorWhileUnavailable(_logger, exception, what, Redaction.Describe(exception));
        }
    }

    /// <summary>A probe succeeded: the outage ended (or the suspicion was a blip).</summary>
    public void Closed(Shard shard, WindowController.ClosedWindow closed)
    {
        if (!closed.WasOutage)
        {
            Log.BlipRecovered(_logger, closed.Outage.TotalMilliseconds, closed.Skipped);
            return;
        }

        var serverAddress = shard.IsDeployment ? null : shard.ServerAddress;
        _metrics.Transition(WindowController.Transition.Closed, serverAddress);
        if (shard.IsDeployment)
        {
            Log.WindowClosed(_logger, closed.Outage.TotalSeconds, closed.Skipped);
        }
        else
        {
            Log.ShardWindowClosed(_logger, shard.ServerAddress, shard.Slots, closed.Outage.TotalSeconds, closed.Skipped);
        }

        ResilientCacheActivitySource.WindowClosed(_availability.Name, closed.Outage, closed.Skipped);
        if (shard.IsDeployment)
        {
            _availability.RaiseChanged(true);
        }

        _availability.RaiseClosed(_logger, closed.Outage, closed.Skipped, serverAddress);
    }

    /// <summary>The probe applied what the outage left pending.</summary>
    public void Replayed(ReplayResult applied, bool logged)
    {
        _metrics.Replayed(applied.Duration);
        if (logged)
        {
            Log.InvalidationsApplied(_logger, applied.KeysDeleted, applied.TagsEvicted, applied.KeysPurged, applied.Duration.TotalMilliseconds, applied.Dropped);
        }
    }
}
