namespace Resilient.Caching.Storage;

/// <summary>The key (or tag) an operation is about, and what kind it is; <see cref="None"/> for none (a PING).</summary>
internal readonly record struct CacheTarget(KeyKind Kind, string? Key)
{
    public static CacheTarget None => default;

    public static CacheTarget CacheKey(string key) => new(KeyKind.CacheKey, key);

    public static CacheTarget OutputCacheEntry(string key) => new(KeyKind.OutputCacheEntry, key);

    public static CacheTarget OutputCacheTag(string tag) => new(KeyKind.OutputCacheTag, tag);

    /// <summary>Gets a value indicating whether this is a distributed-cache key (the only kind a made-up miss or a replica read concerns).</summary>
    public bool IsCacheKey => Kind == KeyKind.CacheKey && Key is not null;
}
