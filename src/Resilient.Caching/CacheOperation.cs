namespace Resilient.Caching;

/// <summary>The cache operations, as they are named in logs and metrics.</summary>
internal enum CacheOperation
{
    Get,
    Set,
    Refresh,
    Remove,
    EvictByTag,
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
