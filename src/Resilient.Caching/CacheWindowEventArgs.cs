namespace Resilient.Caching;

/// <summary>
/// Raised by <see cref="CacheAvailability.WindowOpened"/>: a confirmed Redis failure opened the unavailable window
/// (an outage began), or a probe failed and reopened it (the outage goes on).
/// </summary>
public sealed class CacheWindowOpenedEventArgs : EventArgs
{
    internal CacheWindowOpenedEventArgs(string cacheName, bool isProbeFailure, bool isAuthenticationFailure, string operation, string reason, Exception? error, TimeSpan window, DateTimeOffset timestamp, string? serverAddress = null)
    {
        CacheName = cacheName;
        ServerAddress = serverAddress;
        IsProbeFailure = isProbeFailure;
        IsAuthenticationFailure = isAuthenticationFailure;
        Operation = operation;
        Reason = reason;
        Error = error;
        Window = window;
        Timestamp = timestamp;
    }

    /// <summary>Gets the name of the cache: the service key of a keyed registration, <c>"default"</c> for the unkeyed one.</summary>
    public string CacheName { get; }

    /// <summary>
    /// Gets the primary (<c>host:port</c>) of the Redis Cluster shard whose window this is: only that shard's keys skip
    /// Redis. <see langword="null"/> when the window covers every key (a single server, Sentinel, or no connection).
    /// </summary>
    public string? ServerAddress { get; }

    /// <summary>
    /// Gets a value indicating whether a probe failed during an outage already under way (<see langword="true"/>),
    /// rather than an outage beginning (<see langword="false"/>: raised once per outage, the one to page on).
    /// </summary>
    public bool IsProbeFailure { get; }

    /// <summary>Gets a value indicating whether Redis refused the credentials (NOAUTH, WRONGPASS): a misconfiguration, not an outage of Redis.</summary>
    public bool IsAuthenticationFailure { get; }

    /// <summary>Gets the operation whose failure opened the window: <c>Get</c>, <c>Set</c>, <c>Refresh</c>, <c>Remove</c>, <c>EvictByTag</c> or <c>Ping</c> (a probe or the health check).</summary>
    public string Operation { get; }

    /// <summary>Gets the reason: the error's type and the first line of its message, with every secret masked.</summary>
    public string Reason { get; }

    /// <summary>Gets the error, safe to log or show (a stand-in with masked text when its own would carry a secret).</summary>
    public Exception? Error { get; }

    /// <summary>Gets how long Redis is now left alone before the next probe.</summary>
    public TimeSpan Window { get; }

    /// <summary>Gets when it happened, by the cache's <see cref="TimeProvider"/>.</summary>
    public DateTimeOffset Timestamp { get; }
}

/// <summary>Raised by <see cref="CacheAvailability.WindowClosed"/>: a probe succeeded and the outage is over.</summary>
public sealed class CacheWindowClosedEventArgs : EventArgs
{
    internal CacheWindowClosedEventArgs(string cacheName, TimeSpan outageDuration, long skippedOperations, DateTimeOffset timestamp, string? serverAddress = null)
    {
        CacheName = cacheName;
        ServerAddress = serverAddress;
        OutageDuration = outageDuration;
        SkippedOperations = skippedOperations;
        Timestamp = timestamp;
    }

    /// <summary>Gets the name of the cache: the service key of a keyed registration, <c>"default"</c> for the unkeyed one.</summary>
    public string CacheName { get; }

    /// <summary>Gets the primary (<c>host:port</c>) of the Redis Cluster shard that is back; <see langword="null"/> when the window covered every key.</summary>
    public string? ServerAddress { get; }

    /// <summary>Gets how long the outage lasted, from the failure that opened the window to the successful probe.</summary>
    public TimeSpan OutageDuration { get; }

    /// <summary>Gets how many operations skipped Redis during the outage.</summary>
    public long SkippedOperations { get; }

    /// <summary>Gets when it happened, by the cache's <see cref="TimeProvider"/>.</summary>
    public DateTimeOffset Timestamp { get; }
}
