using Resilient.Caching.Outages;
using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace Resilient.Caching.Diagnostics;

/// <summary>
/// The <c>Resilient.Caching</c> meter. Instrument and attribute names follow the OpenTelemetry semantic
/// conventions (lower-case, dot-separated, unit in UCUM, durations in seconds).
/// </summary>
internal sealed class ResilientCacheMetrics : IDisposable
{
    public const string MeterName = "Resilient.Caching";
    public const string OperationsName = "resilient_caching.operations";
    public const string DurationName = "resilient_caching.operation.duration";
    public const string TransitionsName = "resilient_caching.window.transitions";
    public const string AvailabilityName = "resilient_caching.availability";
    public const string OperationTag = "resilient_caching.operation";
    public const string OutcomeTag = "resilient_caching.outcome";
    public const string TransitionTag = "resilient_caching.window.transition";
    public const string CacheTag = "resilient_caching.cache";

    /// <summary>The primary of a cluster shard (OpenTelemetry's semantic convention), on the transitions and availability of a shard.</summary>
    public const string ServerAddressTag = "server.address";
    public const string PendingName = "resilient_caching.invalidations.pending";
    public const string DroppedName = "resilient_caching.invalidations.dropped";
    public const string ReplayDurationName = "resilient_caching.invalidations.replay.duration";

    private static readonly string[] s_operations = ["get", "set", "refresh", "remove", "evict_by_tag", "ping", "ping", "ping", "ping"];
    private static readonly string[] s_outcomes = ["hit", "miss", "write", "skipped", "error"];

    private readonly Meter _meter;
    private readonly bool _ownsMeter;
    private readonly Counter<long> _operations;
    private readonly Histogram<double> _duration;
    private readonly Counter<long> _transitions;
    private readonly Counter<long> _dropped;
    private readonly Histogram<double> _replayDuration;
    private readonly KeyValuePair<string, object?> _cacheTag;
    private readonly Gauges _gauges;

    // The meter factory hands every cache the same meter, and a meter keeps the first of two instruments of one
    // name: one set of gauges per meter reports every cache on it.
    private static readonly System.Runtime.CompilerServices.ConditionalWeakTable<Meter, Gauges> s_gauges = [];

    /// <param name="meterFactory">The application's meter factory, if any.</param>
    /// <param name="shards">The windows, for the availability gauge (each shard's too, in a cluster).</param>
    /// <param name="pending">The pending invalidations, for their gauge.</param>
    /// <param name="cacheName">The cache's name on every measurement: <c>"default"</c>, or the service key of a keyed registration.</param>
    public ResilientCacheMetrics(IMeterFactory? meterFactory, Topology.ShardMap shards, Recovery.PendingInvalidations? pending = null, string cacheName = CacheAvailability.DefaultName)
    {
        _ownsMeter = meterFactory is null;
        _cacheTag = new KeyValuePair<string, object?>(CacheTag, cacheName);
        _meter = meterFactory?.Create(MeterName) ?? new Meter(MeterName);
        _operations = _meter.CreateCounter<long>(OperationsName, "{operation}", "Cache operations by operation and outcome (hit, miss, write, skipped, error).");
        _duration = _meter.CreateHistogram<double>(DurationName, "s", "Duration of cache operations that called Redis.",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10] });
        _transitions = _meter.CreateCounter<long>(TransitionsName, "{transition}", "Unavailable-window transitions (opened, reopened, closed).");
        _dropped = _meter.CreateCounter<long>(DroppedName, "{write}", "Writes that could not reach Redis and could not be remembered either (the bound was reached).");
        _replayDuration = _meter.CreateHistogram<double>(ReplayDurationName, "s", "How long applying the pending invalidations took before Redis was used again.");
        _gauges = s_gauges.GetValue(_meter, static meter => new Gauges(meter));
        _gauges.Add(this, shards, pending);
    }

    /// <summary>Returns a start timestamp only when someone listens to durations, so the hot path pays nothing otherwise.</summary>
    public long Start() => _duration.Enabled ? Stopwatch.GetTimestamp() : 0;

    public void Completed(CacheOperation operation, CacheOutcome outcome, long startTimestamp)
    {
        var operationTag = new KeyValuePair<string, object?>(OperationTag, s_operations[(int)operation]);
        var outcomeTag = new KeyValuePair<string, object?>(OutcomeTag, s_outcomes[(int)outcome]);
        if (_operations.Enabled)
        {
            _operations.Add(1, operationTag, outcomeTag, _cacheTag);
        }

        if (startTimestamp != 0)
        {
            _duration.Record(Stopwatch.GetElapsedTime(startTimestamp).TotalSeconds, operationTag, outcomeTag, _cacheTag);
        }
    }

    public void Skipped(CacheOperation operation)
    {
        if (_operations.Enabled)
        {
            _operations.Add(1,
                new KeyValuePair<string, object?>(OperationTag, s_operations[(int)operation]),
                new KeyValuePair<string, object?>(OutcomeTag, s_outcomes[(int)CacheOutcome.Skipped]),
                _cacheTag);
        }
    }

    /// <summary>Counts a window transition: opened, reopened (a failed probe) or closed. Blips are not transitions.</summary>
    /// <param name="transition">What happened.</param>
    /// <param name="serverAddress">In a cluster, the primary whose shard it happened to (<c>server.address</c>).</param>
    public void Transition(Outages.WindowController.Transition transition, string? serverAddress = null)
    {
        var name = transition switch
        {
            Outages.WindowController.Transition.Opened => "opened",
            Outages.WindowController.Transition.Reopened => "reopened",
            Outages.WindowController.Transition.Closed => "closed",
            _ => null,
        };
        if (name is not null && _transitions.Enabled)
        {
            if (serverAddress is null)
            {
                _transitions.Add(1, new KeyValuePair<string, object?>(TransitionTag, name), _cacheTag);
            }
            else
            {
                _transitions.Add(1, new KeyValuePair<string, object?>(TransitionTag, name), _cacheTag, new KeyValuePair<string, object?>(ServerAddressTag, serverAddress));
            }
        }
    }

    public void InvalidationsDropped()
    {
        if (_dropped.Enabled)
        {
            _dropped.Add(1, _cacheTag);
        }
    }

    public void Replayed(TimeSpan duration)
    {
        if (_replayDuration.Enabled)
        {
            _replayDuration.Record(duration.TotalSeconds, _cacheTag);
        }
    }

    public void Dispose()
    {
        _gauges.Remove(this);
        if (_ownsMeter)
        {
            _meter.Dispose();
        }
    }

    /// <summary>The observable gauges of every cache on one meter: availability, and pending invalidations where they are kept.</summary>
    private sealed class Gauges
    {
        private readonly Lock _lock = new();
        private readonly List<(ResilientCacheMetrics Metrics, Topology.ShardMap Shards, Recovery.PendingInvalidations? Pending)> _caches = [];

        public Gauges(Meter meter)
        {
            meter.CreateObservableGauge(AvailabilityName, ObserveAvailability, "1", "1 while Redis is in use, 0 while the unavailable window is open.");
            meter.CreateObservableGauge(PendingName, ObservePending, "{invalidation}", "Writes that may not have reached Redis, to be applied as deletions or evictions when it is back.");
        }

        public void Add(ResilientCacheMetrics metrics, Topology.ShardMap shards, Recovery.PendingInvalidations? pending)
        {
            lock (_lock)
            {
                _caches.Add((metrics, shards, pending));
            }
        }

        public void Remove(ResilientCacheMetrics metrics)
        {
            lock (_lock)
            {
                _caches.RemoveAll(c => ReferenceEquals(c.Metrics, metrics));
            }
        }

        private List<Measurement<int>> ObserveAvailability()
        {
            lock (_lock)
            {
                var measurements = new List<Measurement<int>>();
                foreach (var (metrics, shards, _) in _caches)
                {
                    measurements.Add(new Measurement<int>(shards.Deployment.Controller.IsAvailable && !shards.AnyShardOut ? 1 : 0, metrics._cacheTag));
                    foreach (var shard in shards.Shards)
                    {
                        measurements.Add(new Measurement<int>(
                            shard.Controller.IsAvailable ? 1 : 0, metrics._cacheTag, new KeyValuePair<string, object?>(ServerAddressTag, shard.ServerAddress)));
                    }
                }

                return measurements;
            }
        }

        private List<Measurement<int>> ObservePending()
        {
            lock (_lock)
            {
                return [.. _caches.Where(static c => c.Pending is not null).Select(static c => new Measurement<int>(c.Pending!.Count, c.Metrics._cacheTag))];
            }
        }
    }
}
