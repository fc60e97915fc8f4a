using Resilient.Caching.Outages;

namespace Resilient.Caching;

/// <summary>
/// The state of the unavailable window shared by every Redis consumer of one registration (the distributed cache,
/// the output-cache store, the health check): after a confirmed Redis failure nobody calls Redis until the window
/// elapses, then one probe checks it. Resolve it from dependency injection to show or report the cache's state.
/// </summary>
/// <remarks>
/// <para>A read-only view: the state is changed only by the cache's own window controllers.</para>
/// <para>
/// In a Redis Cluster each primary's hash slots have a window of their own (<see cref="Shards"/>): the properties
/// here then sum up the whole cache (available only when every shard is; the outage that began first; the error
/// seen last).
/// </para>
/// </remarks>
public sealed partial class CacheAvailability
{
    private readonly WindowController _controller;
    private readonly Topology.ShardMap _shards;
    private readonly Recovery.PendingInvalidations _pending;
    private ShownError? _lastErrorShown;

    internal CacheAvailability(string name, Topology.ShardMap shards, Recovery.PendingInvalidations pending)
    {
        Name = name;
        _shards = shards;
        _controller = shards.Deployment.Controller;
        _pending = pending;
    }

    /// <summary>Raised after an outage of the whole deployment begins (<see langword="false"/>) or ends (<see langword="true"/>); blips raise nothing. For tests and dashboards.</summary>
    internal event Action<bool>? Changed;

    /// <summary>Gets the length of the unavailable window.</summary>
    public TimeSpan Window => _controller.Window;

    /// <summary>
    /// Gets a value indicating whether Redis is in use: no unavailable window is open, and no failure is being
    /// checked (a suspected blip, confirmed or dismissed within the operation timeout).
    /// </summary>
    public bool IsAvailable => _controller.IsAvailable && !_shards.AnyShardOut;

    /// <summary>Gets a value indicating whether a confirmed outage is under way (the window is open).</summary>
    internal bool IsOutage => _controller.IsOutage || _shards.Shards.Any(static s => s.Controller.IsOutage);

    /// <summary>
    /// Gets how long until a probe may check Redis again; <see cref="TimeSpan.Zero"/> while available or once the
    /// window has elapsed. In a cluster, the soonest of the shards that are out.
    /// </summary>
    public TimeSpan RetryAfter => _controller.IsAvailable
        ? Windows().Where(static c => !c.IsAvailable).Select(static c => c.RetryAfter).DefaultIfEmpty().Min()
        : _controller.RetryAfter;

    /// <summary>Gets how long the current outage has lasted (in a cluster, the longest of the shards'); <see cref="TimeSpan.Zero"/> while available.</summary>
    public TimeSpan OutageDuration => Windows().Max(static c => c.OutageDuration);

    /// <summary>Gets how many operations skipped Redis during the current (or, once closed, the last) outage, every shard's together.</summary>
    public long SkippedOperations => Windows().Sum(static c => c.SkippedOperations);

    /// <summary>Gets how many outages (windows opened from the available state) there have been, every shard's together.</summary>
    public long Outages => Windows().Sum(static c => c.Outages);

    /// <summary>
    /// Gets the primaries of a Redis Cluster, each with the window of its hash slots; empty for a single server or a
    /// Sentinel deployment (one window for every key) and until the cluster's layout is known.
    /// </summary>
    public IReadOnlyList<CacheShardAvailability> Shards => [.. _shards.Shards.Select(static s => new CacheShardAvailability(s))];

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
            var error = Windows().Where(static c => c.LastErrorAt is not null).MaxBy(static c => c.LastErrorAt)?.LastError;
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
    public DateTimeOffset? LastErrorAt => Windows().Max(static c => c.LastErrorAt);

    internal TimeProvider TimeProvider => _controller.TimeProvider;

    /// <summary>Gets the window of the whole deployment (for tests and benchmarks that open it).</summary>
    internal WindowController Deployment => _controller;

    /// <summary>Raises <see cref="Changed"/>; by the outage notifications only.</summary>
    internal void RaiseChanged(bool available) => Changed?.Invoke(available);

    private IEnumerable<WindowController> Windows() => _shards.IsCluster ? [_controller, .. _shards.Shards.Select(static s => s.Controller)] : [_controller];

    private sealed record ShownError(Exception? Error, Exception? Shown);
}
