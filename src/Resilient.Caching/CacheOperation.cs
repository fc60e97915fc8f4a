namespace Resilient.Caching;

/// <summary>The cache operations, as they are named in logs and metrics.</summary>
internal enum CacheOperation
{
    Get,
    Set,
    Refresh,
    Remove,
    EvictByTag,

    /// <summary>The health check's PING: outcome <c>hit</c> when Redis answered.</summary>
    Ping,
}

/// <summary>How an operation ended, as counted in metrics.</summary>
internal enum CacheOutcome
{
    Hit,
    Miss,
    Write,
    Skipped,
    Error,
}
