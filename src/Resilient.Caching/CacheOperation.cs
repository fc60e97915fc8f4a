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

    /// <summary>The probe's short-lived write that decides whether a window closes.</summary>
    Probe,

    /// <summary>The client lost its connection to a primary (no call failed: the client said so).</summary>
    ConnectionLost,

    /// <summary>Applying, after the window closed, what calls that failed during the probe's replay left pending.</summary>
    CatchUpReplay,
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
        CacheOperation.EvictByTag => "EvictByTag",
        CacheOperation.ConnectionLost => "connection",

        // The probe and the catch-up replay have always been reported as the PING they stand in for.
        _ => "Ping",
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
