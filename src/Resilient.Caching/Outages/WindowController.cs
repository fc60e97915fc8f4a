namespace Resilient.Caching.Outages;

/// <summary>
/// The one owner of "may we call Redis now?" for a registration. Every state change happens here, under one lock;
/// only the check that Redis is available is lock-free (one volatile read). <see cref="CacheAvailability"/> is the
/// read-only public view of this state.
/// </summary>
/// <remarks>
/// States: closed (Redis in use); suspected (a failure that may be a blip — a reset, a refusal, a timeout the
/// client blames on a starved thread pool — is being confirmed by a probe that starts at once; callers skip Redis
/// meanwhile, nothing is logged above Debug); open (a confirmed outage: callers skip Redis until the window elapses,
/// then one probe). The probe holds a permit that expires with time, so a probe that never reports cannot keep
/// Redis skipped for ever.
/// </remarks>
internal sealed class WindowController : IDisposable
{
    private readonly TimeProvider _timeProvider;
    private readonly long _window;
    private readonly long _permitLifetime;
    private readonly StripedCounter _skipped = new();
    private readonly Lock _lock = new();
    private readonly Action<bool>? _onAvailabilityChanged;

    // 0 while closed, otherwise the timestamp from which a probe may start. The only field the hot path reads.
    private long _openUntil;
    private long _permitUntil;
    private long _permit;
    private bool _confirmed;
    private long _outageStartedAt;
    private long _outages;
    private Exception? _lastError;
    private long _lastErrorAtUtcTicks;
    private CancellationTokenSource _opened = new();

    // Set while a suspected failure is being checked: true when the probe finds Redis fine (a blip), false when it
    // confirms an outage. Callers that arrive meanwhile wait for it within their own budget.
    private TaskCompletionSource<bool>? _verdict;

    /// <param name="timeProvider">All time comes from here.</param>
    /// <param name="window">How long Redis is left alone after a confirmed failure.</param>
    /// <param name="probeBudget">The longest a probe may take (the operation timeout); its permit lasts a little longer.</param>
    /// <param name="onAvailabilityChanged">Called (outside the lock) when Redis stops being used (false) and when it is used again (true); state bookkeeping only (notifications belong to the outage lifecycle).</param>
    public WindowController(TimeProvider timeProvider, TimeSpan window, TimeSpan probeBudget, Action<bool>? onAvailabilityChanged = null)
    {
        _timeProvider = timeProvider;
        _onAvailabilityChanged = onAvailabilityChanged;
        Window = window;
        _window = ToTimestampUnits(window);
        _permitLifetime = ToTimestampUnits(probeBudget + probeBudget + TimeSpan.FromSeconds(1));
    }

    public TimeSpan Window { get; }

    public TimeProvider TimeProvider => _timeProvider;

    /// <summary>Redis is in use: no window is open, and no suspected failure is being checked.</summary>
    public bool IsAvailable => Volatile.Read(ref _openUntil) == 0;

    /// <summary>A confirmed outage: the window is open (not merely a suspected failure being checked).</summary>
    public bool IsOutage
    {
        get
        {
            lock (_lock)
            {
                return _openUntil != 0 && _confirmed;
            }
        }
    }

    public TimeSpan RetryAfter
    {
        get
        {
            var until = Volatile.Read(ref _openUntil);
            if (until == 0)
            {
                return TimeSpan.Zero;
            }

            var left = _timeProvider.GetElapsedTime(_timeProvider.GetTimestamp(), until);
            return left > TimeSpan.Zero ? left : TimeSpan.Zero;
        }
    }

    public TimeSpan OutageDuration => IsAvailable ? TimeSpan.Zero : _timeProvider.GetElapsedTime(Volatile.Read(ref _outageStartedAt));

    public long SkippedOperations => _skipped.Sum();

    public long Outages => Volatile.Read(ref _outages);

    public Exception? LastError => Volatile.Read(ref _lastError);

    public DateTimeOffset? LastErrorAt =>
        Volatile.Read(ref _lastErrorAtUtcTicks) is var ticks and not 0 ? new DateTimeOffset(ticks, TimeSpan.Zero) : null;

    /// <summary>
    /// Cancelled when Redis stops being used (a failure suspected or confirmed): callers still waiting for a
    /// connection are released with their fallback at that moment. Replaced when the window closes.
    /// </summary>
    public CancellationToken StoppedUsingRedis => Volatile.Read(ref _opened).Token;

    /// <summary>
    /// Gets the verdict on a suspected failure while a probe checks it (<see langword="true"/>: a blip, Redis is in use
    /// again; <see langword="false"/>: an outage); null when no suspicion is being checked.
    /// </summary>
    public Task<bool>? Verdict => Volatile.Read(ref _verdict)?.Task;

    /// <summary>Decides whether a caller may call Redis now. Allocation-free; lock-free unless a probe may start.</summary>
    public Gate TryEnter()
    {
        var until = Volatile.Read(ref _openUntil);
        if (until == 0)
        {
            return Gate.Proceed;
        }

        var now = _timeProvider.GetTimestamp();
        if (now < until || now < Volatile.Read(ref _permitUntil))
        {
            if (Volatile.Read(ref _verdict) is { Task.IsCompleted: false })
            {
                // A probe is checking a suspicion: its verdict is worth waiting for (a permit that expired starts another).
                return Gate.AwaitVerdict;
            }

            _skipped.Increment();
            return Gate.ShortCircuit;
        }

        lock (_lock)
        {
            if (_openUntil == 0)
            {
                return Gate.Proceed;
            }

            _skipped.Increment();
            if (now < _openUntil || now < _permitUntil)
            {
                return Gate.ShortCircuit;
            }

            _permitUntil = now + _permitLifetime;
            _permit++;
            return Gate.StartProbe;
        }
    }

    /// <summary>Keeps an error as the last one (<see cref="LastError"/>) without changing the window: a timeout the application's own stall explains.</summary>
    public void NoteError(Exception exception)
    {
        Volatile.Write(ref _lastError, exception);
        Volatile.Write(ref _lastErrorAtUtcTicks, _timeProvider.GetUtcNow().UtcTicks);
    }

    /// <summary>The number of the latest probe permit granted; a probe reads it as it starts, and reports its failure with it.</summary>
    public long Permit
    {
        get
        {
            lock (_lock)
            {
                return _permit;
            }
        }
    }

    /// <summary>
    /// Records a failure of a call or of a probe. A confirmed failure opens (or extends) the window; a suspected
    /// one starts a confirmation when Redis was in use (<see cref="Transition.Suspected"/>: the caller starts the
    /// probe, whose permit it now holds).
    /// </summary>
    /// <param name="exception">What went wrong.</param>
    /// <param name="confirmed">An outage at once, not a suspicion a probe must confirm.</param>
    /// <param name="fromProbe">A probe failed (a confirmation, whatever the error).</param>
    /// <param name="early">The probe was an early one (<see cref="TryStartEarlyProbe"/>): its failure leaves the window as it was.</param>
    /// <param name="permit">The <see cref="Permit"/> the probe was started under: a failure reported after a newer permit was granted (this probe outlived its own) is stale.</param>
    public Transition RecordFailure(Exception exception, bool confirmed, bool fromProbe, bool early = false, long? permit = null)
    {
        var now = _timeProvider.GetTimestamp();
        CancellationTokenSource? release = null;
        TaskCompletionSource<bool>? confirmedOutage = null;
        Transition transition;
        var stopped = false;
        lock (_lock)
        {
            var stale = fromProbe && (_openUntil == 0 || (permit is { } number && number != _permit));
            if (!stale)
            {
                // Before the state changes: whoever sees the window open finds its reason.
                NoteError(exception);
            }

            if (stale)
            {
                // A probe that outlived its permit reports after another probe closed the window (Redis answered
                // since; the next call that fails judges afresh) or while a newer probe holds the permit (whose
                // verdict is the one that counts): its failure is stale.
                transition = Transition.Stale;
            }
            else if (fromProbe && early)
            {
                // The client saw the topology change, but the new primary is not writable yet: the window keeps its end.
                _permitUntil = 0;
                transition = Transition.AlreadyOpen;
            }
            else if (fromProbe)
            {
                // A failed probe is a confirmation, whatever the error: the window opens (or reopens) in full.
                _openUntil = Math.Max(1, now + _window);
                _permitUntil = 0;
                confirmedOutage = _verdict;
                Volatile.Write(ref _verdict, null);
                transition = _confirmed ? Transition.Reopened : Transition.Opened;
                if (!_confirmed)
                {
                    _confirmed = true;
                    _outages++;
                }
            }
            else if (_openUntil == 0)
            {
                stopped = true;
                release = _opened;
                _outageStartedAt = now;
                _skipped.Reset();
                if (confirmed)
                {
                    _openUntil = Math.Max(1, now + _window);
                    _confirmed = true;
                    _outages++;
                    transition = Transition.Opened;
                }
                else
                {
                    _openUntil = Math.Max(1, now);
                    _permitUntil = now + _permitLifetime;
                    _permit++;
                    _confirmed = false;
                    Volatile.Write(ref _verdict, new TaskCompletionSource<bool>(TaskCreationOptions.RunContinuationsAsynchronously));
                    transition = Transition.Suspected;
                }
            }
            else if (confirmed && !_confirmed)
            {
                // A call that was already under way confirms what the probe is still checking.
                _openUntil = Math.Max(1, now + _window);
                confirmedOutage = _verdict;
                Volatile.Write(ref _verdict, null);
                _confirmed = true;
                _outages++;
                transition = Transition.Opened;
            }
            else
            {
                if (confirmed)
                {
                    _openUntil = Math.Max(_openUntil, now + _window);
                }

                transition = Transition.AlreadyOpen;
            }
        }

        release?.Cancel();
        confirmedOutage?.TrySetResult(false);
        if (stopped)
        {
            _onAvailabilityChanged?.Invoke(false);
        }

        return transition;
    }

    /// <summary>
    /// Lets a probe start now, before the window has elapsed, when something says Redis may be back (the client saw
    /// a failover complete); false when Redis is in use, a failure is still being checked, or a probe is under way.
    /// </summary>
    public bool TryStartEarlyProbe()
    {
        var now = _timeProvider.GetTimestamp();
        lock (_lock)
        {
            if (_openUntil == 0 || !_confirmed || now < _permitUntil)
            {
                return false;
            }

            _permitUntil = now + _permitLifetime;
            _permit++;
            return true;
        }
    }

    /// <summary>Closes the window after a successful probe; null when it was closed already.</summary>
    public ClosedWindow? RecordProbeSuccess()
    {
        ClosedWindow result;
        TaskCompletionSource<bool>? blip;
        lock (_lock)
        {
            if (_openUntil == 0)
            {
                return null;
            }

            result = new ClosedWindow(_timeProvider.GetElapsedTime(_outageStartedAt), _skipped.Sum(), _confirmed);
            _openUntil = 0;
            _permitUntil = 0;
            _confirmed = false;
            blip = _verdict;
            Volatile.Write(ref _verdict, null);
            if (Volatile.Read(ref _opened).IsCancellationRequested)
            {
                Volatile.Write(ref _opened, new CancellationTokenSource());
            }
        }

        _onAvailabilityChanged?.Invoke(true);
        blip?.TrySetResult(true);
        return result;
    }

    /// <summary>Releases every caller still waiting for a connection (shutdown does not wait for Redis). The sources are not disposed: a late caller may still read <see cref="StoppedUsingRedis"/>.</summary>
    public void Dispose()
    {
        Volatile.Read(ref _opened).Cancel();
        Volatile.Read(ref _verdict)?.TrySetResult(false);
    }

    private long ToTimestampUnits(TimeSpan value) => (long)(value.TotalSeconds * _timeProvider.TimestampFrequency);

    /// <summary>What a window that closed had been: how long, how many operations it skipped, and whether it was an outage (or a blip).</summary>
    internal readonly record struct ClosedWindow(TimeSpan Outage, long Skipped, bool WasOutage);

    internal enum Gate
    {
        Proceed,

        /// <summary>The window has elapsed and this caller holds the probe permit: start the probe, take the fallback.</summary>
        StartProbe,
        ShortCircuit,

        /// <summary>A suspected failure is being checked: wait for the <see cref="Verdict"/> (within the caller's budget) rather than skip Redis.</summary>
        AwaitVerdict,
    }

    internal enum Transition
    {
        Opened,
        Reopened,
        Suspected,
        AlreadyOpen,
        Closed,

        /// <summary>A probe failed after the window had closed (its permit had expired and another probe closed it): nothing changes.</summary>
        Stale,
    }
}
