using System.Globalization;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Resilient.Caching.Guard;
using Resilient.Caching.Storage;

namespace Resilient.Caching.Diagnostics;

/// <summary>
/// Healthy while Redis answers a PING (and, in a cluster, no shard is out); Degraded, never Unhealthy, while the unavailable window is open: the
/// application still serves, only without its cache. The PING goes through the window like any cache operation,
/// so a check inside the window costs nothing, a failing PING opens the window for every consumer, and a check
/// after the window has elapsed may be the probe that closes it (recovery is noticed without user traffic).
/// </summary>
internal sealed class ResilientRedisCacheHealthCheck(ResilientRedisCacheServices services) : IHealthCheck
{
    internal const string RetryAfterKey = "retry_after_seconds";
    internal const string OutageKey = "outage_seconds";
    internal const string SkippedKey = "skipped_operations";
    internal const string LastErrorKey = "last_error";
    internal const string OutagesKey = "outages";
    internal const string PingKey = "ping_ms";
    internal const string PendingKey = "pending_invalidations";
    internal const string DroppedKey = "dropped_invalidations";
    internal const string LastReplayKey = "last_replay_ms";
    internal const string UnavailableShardsKey = "unavailable_shards";

    private static readonly CacheCall<ResilientRedisCacheServices, bool> s_ping = new()
    {
        Operation = CacheOperation.Ping,
        InvokeAsync = static (s, _) => PingAsync(s),
        Outcome = static _ => CacheOutcome.Hit,
    };

    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        var timeProvider = services.TimeProvider;
        var started = timeProvider.GetTimestamp();
        var answered = false;
        Exception? error = null;
        try
        {
            answered = await services.Guard.RunAsync(s_ping, CacheTarget.None, services, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception exception) when (exception is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            // IgnoreExceptions=false (CacheUnavailableException, or the Redis error itself), or an error that says
            // nothing about availability (e.g. NOPERM): still only Degraded.
            error = exception;
        }

        var availability = services.Availability;
        var shardsOut = availability.Shards.Where(static s => !s.IsAvailable).ToList();
        if (answered && shardsOut.Count > 0)
        {
            // A cluster with a primary out: the cache works, without that shard's keys.
            var outList = string.Join(", ", shardsOut.Select(static s => $"{s.ServerAddress} (slots {string.Join(",", s.Slots)})"));
            var shardData = OutageData(availability);
            shardData[UnavailableShardsKey] = shardsOut.Select(static s => s.ServerAddress).ToArray();
            return HealthCheckResult.Degraded(
                $"Redis answered PING, but {shardsOut.Count} of {availability.Shards.Count} cluster shards are unavailable: {outList}; their keys skip Redis (reads go to a replica where there is one).",
                data: shardData);
        }

        if (answered)
        {
            var elapsed = timeProvider.GetElapsedTime(started).TotalMilliseconds;
            return HealthCheckResult.Healthy(
                string.Create(CultureInfo.InvariantCulture, $"Redis answered PING in {elapsed:0.#} ms."),
                new Dictionary<string, object>
                {
                    [PingKey] = Math.Round(elapsed, 1),
                    [OutagesKey] = availability.Outages,
                    [PendingKey] = availability.PendingInvalidations,
                    [DroppedKey] = availability.DroppedInvalidations,
                    [LastReplayKey] = LastReplayMilliseconds(),
                });
        }

        var lastError = error is CacheUnavailableException or null ? availability.LastError ?? error : error;
        var data = OutageData(availability);
        if (lastError is not null)
        {
            data[LastErrorKey] = Redaction.Describe(lastError);
        }

        var description = availability.IsAvailable
            ? $"The PING to Redis failed: {(lastError is null ? "no reply" : Redaction.Describe(lastError))}"
            : string.Create(CultureInfo.InvariantCulture,
                $"Redis is unavailable; the cache skips it and tries again in {availability.RetryAfter.TotalSeconds:0.#} s.");
        return HealthCheckResult.Degraded(description, data: data);
    }

    private static async ValueTask<bool> PingAsync(ResilientRedisCacheServices s)
    {
        // As long as any cache operation may take: the connection waits at most the operation timeout (and a
        // connect still under way is kept, not reset), then the PING gets the operation timeout of its own. A PING
        // that misses it is a timeout like any other: the socket may be silently dead, the window opens.
        var multiplexer = await s.Connection.GetMultiplexerAsync().ConfigureAwait(false);
        var ping = multiplexer.GetDatabase().PingAsync();
        try
        {
            await ping.WaitAsync(s.Options.OperationTimeout, s.TimeProvider).ConfigureAwait(false);
        }
        catch (TimeoutException) when (!ping.IsCompleted)
        {
            _ = ping.ContinueWith(static t => _ = t.Exception, CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted, TaskScheduler.Default);
            throw;
        }

        return true;
    }

    private Dictionary<string, object> OutageData(CacheAvailability availability) => new()
    {
        [RetryAfterKey] = Math.Round(availability.RetryAfter.TotalSeconds, 1),
        [OutageKey] = Math.Round(availability.OutageDuration.TotalSeconds, 1),
        [SkippedKey] = availability.SkippedOperations,
        [OutagesKey] = availability.Outages,
        [PendingKey] = availability.PendingInvalidations,
        [DroppedKey] = availability.DroppedInvalidations,
        [LastReplayKey] = LastReplayMilliseconds(),
    };

    // How long applying the last outage's pending invalidations took (0 before any).
    private double LastReplayMilliseconds() => Math.Round(services.Core.Pending.LastReplay?.Duration.TotalMilliseconds ?? 0, 1);
}
