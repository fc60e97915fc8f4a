namespace Resilient.Caching;

/// <summary>
/// The unavailable window shared by every Redis consumer of one registration (the distributed cache and the
/// output-cache store): after a Redis failure nobody calls Redis until the window elapses, then exactly one
/// caller probes. Resolve it from dependency injection to show or report the cache's state.
/// </summary>
/// <remarks>
/// Lock-free: the whole state is one <see cref="long"/> (the timestamp until which Redis is skipped, 0 while
/// available) and one probe flag, changed with <see cref="Interlocked"/>. All time comes from the
/// <see cref="TimeProvider"/>.
/// </remarks>
public sealed class CacheAvailability
{
    private readonly TimeProvider _timeProvider;
    private readonly long _windowInTimestampUnits;
    private readonly StripedCounter _skipped = new();

    private long _unavailableUntil;
    private int _probing;
    private long _outageStartedAt;
    private long _outages;
    private Exception? _lastError;
    private ShownError? _lastErrorShown;
    private long _lastErrorAtUtcTicks;

    internal CacheAvailability(TimeProvider timeProvider, TimeSpan window)
    {
        _timeProvider = timeProvider;
        Window = window;
        _windowInTimestampUnits = (long)(window.TotalSeconds * timeProvider.TimestampFrequency);
    }

    /// <summary>Raised after the window opens (<see langword="false"/>) or closes (<see langword="true"/>); for tests and dashboards.</summary>
    internal event Action<bool>? Changed;

    /// <summary>Gets the length of the unavailable window.</summary>
    public TimeSpan Window { get; }

    /// <summary>Gets a value indicating whether Redis is in use (no unavailable window is open).</summary>
    public bool IsAvailable => Volatile.Read(ref _unavailableUntil) == 0;

    /// <summary>Gets how long until a caller probes Redis again; <see cref="TimeSpan.Zero"/> while available or once the window has elapsed.</summary>
    public TimeSpan RetryAfter
    {
        get
        {
            var until = Volatile.Read(ref _unavailableUntil);
            if (until == 0)
            {
                return TimeSpan.Zero;
            }

            var left = _timeProvider.GetElapsedTime(_timeProvider.GetTimestamp(), until);
            return left > TimeSpan.Zero ? left : TimeSpan.Zero;
        }
    }

    /// <summary>Gets how long the current outage has lasted; <see cref="TimeSpan.Zero"/> while available.</summary>
    public TimeSpan OutageDuration => IsAvailable ? TimeSpan.Zero : _timeProvider.GetElapsedTime(Volatile.Read(ref _outageStartedAt));

    /// <summary>Gets how many operations skipped Redis during the current (or, once closed, the last) outage.</summary>
    public long SkippedOperations => _skipped.Sum();

    /// <summary>Gets how many outages (windows opened from the available state) there have been.</summary>
    public long Outages => Volatile.Read(ref _outages);

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
            var error = Volatile.Read(ref _lastError);
            var shown = Volatile.Read(ref _lastErrorShown);
            if (shown is null || !ReferenceEquals(shown.Error, error))
            {
                shown = new ShownError(error, Diagnostics.Redaction.ForOutput(error));
                Volatile.Write(ref _lastErrorShown, shown);
            }

            return shown.Shown;
        }
    }

    /// <summary>Gets when the last swallowed Redis error happened, if any.</summary>
    public DateTimeOffset? LastErrorAt =>
        Volatile.Read(ref _lastErrorAtUtcTicks) is var ticks and not 0 ? new DateTimeOffset(ticks, TimeSpan.Zero) : null;

    internal TimeProvider TimeProvider => _timeProvider;

    /// <summary>Decides whether a caller may call Redis now; the hot path is one volatile read.</summary>
    internal Gate TryEnter()
    {
        var until = Volatile.Read(ref _unavailableUntil);
        if (until == 0)
        {
            return Gate.Proceed;
        }

        // Read the probe flag before trying to take it: a failed compare-exchange still takes the cache line
        // exclusively, and every caller would do that while a probe is in flight.
        if (_timeProvider.GetTimestamp() < until || Volatile.Read(ref _probing) != 0 || Interlocked.CompareExchange(ref _probing, 1, 0) != 0)
        {
            _skipped.Increment();
            return Gate.ShortCircuit;
        }

        // The flag was free, but the previous probe may have finished between the reads: if it closed the window
        // this is an ordinary call; if it failed, the window is open again for a full length.
        until = Volatile.Read(ref _unavailableUntil);
        if (until == 0)
        {
            Volatile.Write(ref _probing, 0);
            return Gate.Proceed;
        }

        if (_timeProvider.GetTimestamp() < until)
        {
            Volatile.Write(ref _probing, 0);
            _skipped.Increment();
            return Gate.ShortCircuit;
        }

        return Gate.Probe;
    }

    /// <summary>Records a swallowed failure: opens the window, reopens it after a failed probe, or extends it.</summary>
    internal Transition RecordFailure(Exception exception, bool isProbe)
    {
        Volatile.Write(ref _lastError, exception);
        Volatile.Write(ref _lastErrorAtUtcTicks, _timeProvider.GetUtcNow().UtcTicks);

        var now = _timeProvider.GetTimestamp();
        var until = Math.Max(1, now + _windowInTimestampUnits);
        if (isProbe)
        {
            Volatile.Write(ref _unavailableUntil, until);
            Volatile.Write(ref _probing, 0);
            return Transition.Reopened;
        }

        while (true)
        {
            var current = Volatile.Read(ref _unavailableUntil);
            if (current == 0)
            {
                _skipped.Reset();
                Volatile.Write(ref _outageStartedAt, now);
                if (Interlocked.CompareExchange(ref _unavailableUntil, until, 0) == 0)
                {
                    Interlocked.Increment(ref _outages);
                    Changed?.Invoke(false);
                    return Transition.Opened;
                }
            }
            else if (current >= until || Interlocked.CompareExchange(ref _unavailableUntil, until, current) == current)
            {
                return Transition.AlreadyOpen;
            }
        }
    }

    /// <summary>Closes the window after a successful probe; returns the outage length and the skipped count.</summary>
    internal (TimeSpan Outage, long Skipped) RecordProbeSuccess()
    {
        var outage = _timeProvider.GetElapsedTime(Volatile.Read(ref _outageStartedAt));
        var skipped = _skipped.Sum();
        Volatile.Write(ref _unavailableUntil, 0);
        Volatile.Write(ref _probing, 0);
        Changed?.Invoke(true);
        return (outage, skipped);
    }

    /// <summary>Gives up the probe without a verdict (the caller cancelled, or the error said nothing about Redis).</summary>
    internal void ReleaseProbe() => Volatile.Write(ref _probing, 0);

    private sealed record ShownError(Exception? Error, Exception? Shown);

    internal enum Gate
    {
        Proceed,
        Probe,
        ShortCircuit,
    }

    internal enum Transition
    {
        Opened,
        Reopened,
        AlreadyOpen,
    }
}
