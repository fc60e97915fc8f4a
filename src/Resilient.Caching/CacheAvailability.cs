namespace Resilient.Caching;

/// <summary>
/// The state of the unavailable window shared by every Redis consumer of one registration (the distributed cache,
/// the output-cache store, the health check): after a confirmed Redis failure nobody calls Redis until the window
/// elapses, then one probe checks it. Resolve it from dependency injection to show or report the cache's state.
/// </summary>
/// <remarks>A read-only view: the state is changed only by the cache's own window controller.</remarks>
public sealed partial class CacheAvailability
{
    private readonly WindowController _controller;
    private readonly Recovery.PendingInvalidations _pending;
    private ShownError? _lastErrorShown;

    internal CacheAvailability(WindowController controller, Recovery.PendingInvalidations pending)
    {
        _controller = controller;
        _pending = pending;
    }

    /// <summary>Raised after an outage begins (<see langword="false"/>) or ends (<see langword="true"/>); for tests and dashboards.</summary>
    internal event Action<bool>? Changed
    {
        add => _controller.Changed += value;
        remove => _controller.Changed -= value;
    }

    /// <summary>Gets the length of the unavailable window.</summary>
    public TimeSpan Window => _controller.Window;

    /// <summary>
    /// Gets a value indicating whether Redis is in use: no unavailable window is open, and no failure is being
    /// checked (a suspected blip, confirmed or dismissed within the operation timeout).
    /// </summary>
    public bool IsAvailable => _controller.IsAvailable;

    /// <summary>Gets a value indicating whether a confirmed outage is under way (the window is open).</summary>
    internal bool IsOutage => _controller.IsOutage;

    /// <summary>Gets how long until a probe may check Redis again; <see cref="TimeSpan.Zero"/> while available or once the window has elapsed.</summary>
    public TimeSpan RetryAfter => _controller.RetryAfter;

    /// <summary>Gets how long the current outage has lasted; <see cref="TimeSpan.Zero"/> while available.</summary>
    public TimeSpan OutageDuration => _controller.OutageDuration;

    /// <summary>Gets how many operations skipped Redis during the current (or, once closed, the last) outage.</summary>
    public long SkippedOperations => _controller.SkippedOperations;

    /// <summary>Gets how many outages (windows opened from the available state) there have been.</summary>
    public long Outages => _controller.Outages;

    /// <summary>Gets the last swallowed Redis error, if any.</summary>
    /// <remarks>
    /// Safe to show: when the error's text would carry a secret (a password, URI user-info), a stand-in with the
    /// same type name, stack trace and masked message and <see cref="Exception.ToString"/> is returned instead.
    /// </remarks>
    public Exception? LastError
    {
        get
        {
            // Judged once per error: a caller inside the window with IgnoreExceptions=false gets it as the inner
            // exception of every CacheUnavailableException.
            var error = _controller.LastError;
            var shown = Volatile.Read(ref _lastErrorShown);
            if (shown is null || !ReferenceEquals(shown.Error, error))
            {
                shown = new ShownError(error, Diagnostics.Redaction.ForOutput(error));
                Volatile.Write(ref _lastErrorShown, shown);
            }

            return shown.Shown;
        }
    }

    /// <summary>
    /// Gets how many writes that may not have reached Redis (skipped, failed or timed out) wait to be applied as
    /// deletions or tag evictions when Redis is back, before anyone else uses it.
    /// </summary>
    public int PendingInvalidations => _pending.Count;

    /// <summary>
    /// Gets how many such writes could not be remembered since the last recovery, because the bound
    /// (<see cref="ResilientRedisCacheOptions.MaxPendingInvalidations"/>) was reached: their old values may be served
    /// after the outage, unless the instance purge is on.
    /// </summary>
    public long DroppedInvalidations => _pending.Overflow.DroppedSinceReplay;

    /// <summary>Gets when the last swallowed Redis error happened, if any.</summary>
    public DateTimeOffset? LastErrorAt => _controller.LastErrorAt;

    internal TimeProvider TimeProvider => _controller.TimeProvider;

    private sealed record ShownError(Exception? Error, Exception? Shown);
}
