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

/// <summary>The names of the operations in log lines (metrics use their own lower-case names).</summary>
internal static class CacheOperationNames
{
    public static string Name(this CacheOperation operation) => operation switch
    {
        CacheOperation.Get => "Get",
        CacheOperation.Set => "Set",
        CacheOperation.Refresh => "Refresh",
        CacheOperation.Remove => "Remove",
        CacheOperation.Ping => "Ping",
        _ => "EvictByTag",
    };
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
