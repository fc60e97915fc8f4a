using System.Text;
using StackExchange.Redis;

namespace Resilient.Caching.Storage;

/// <summary>What a cache operation is about, as Microsoft's stock components store it in Redis.</summary>
internal enum KeyKind
{
    /// <summary>A distributed-cache key: the stock <c>RedisCache</c> keeps it as a hash at <c>InstanceName</c> + key.</summary>
    CacheKey,

    /// <summary>An output-cache entry: the stock Redis output-cache store writes it at <c>InstanceName</c> + <c>__MSOCV_</c> + key.</summary>
    OutputCacheEntry,

    /// <summary>An output-cache tag: the stock store knows which entries carry it (a set per tag).</summary>
    OutputCacheTag,
}

/// <summary>
/// Where and how the stock components (Microsoft's <c>RedisCache</c> and Redis output-cache store) keep their data in
/// Redis: the key prefixes of one registration and the hash field of a cache entry's bytes. The one place that knows
/// the storage format, for the replica reads, the cluster's key routing and the replay after an outage.
/// </summary>
internal sealed class StoredKeys
{
    /// <summary>The stock output-cache store's key infix for entries (<c>InstanceName</c> + <c>__MSOCV_</c> + key).</summary>
    public const string OutputCacheEntryInfix = "__MSOCV_";

    /// <summary>
    /// What every key of the stock output-cache store starts with after its <c>InstanceName</c>: entries
    /// (<c>__MSOCV_</c>), tag sets (<c>__MSOCT_</c> + tag), the tag index (<c>__MSOCT</c>) and its clean-up lock.
    /// </summary>
    public const string OutputCacheInfix = "__MSOC";

    /// <summary>The field of the stock cache's hash that holds an entry's bytes.</summary>
    public static readonly RedisValue DataField = "data";

    private readonly byte[] _cachePrefix;
    private readonly byte[] _outputEntryPrefix;
    private readonly RedisKey _cacheKeyPrefix;
    private readonly RedisKey _outputEntryKeyPrefix;

    /// <param name="cacheInstanceName">The distributed cache's <c>InstanceName</c>; may be empty.</param>
    /// <param name="outputCacheInstanceName">The output-cache store's <c>InstanceName</c> (it may differ); the cache's when null.</param>
    public StoredKeys(string? cacheInstanceName, string? outputCacheInstanceName = null)
    {
        CacheInstanceName = cacheInstanceName ?? string.Empty;
        OutputCacheInstanceName = outputCacheInstanceName ?? CacheInstanceName;
        _cachePrefix = Encoding.UTF8.GetBytes(CacheInstanceName);
        _outputEntryPrefix = Encoding.UTF8.GetBytes(OutputCacheInstanceName + OutputCacheEntryInfix);
        _cacheKeyPrefix = _cachePrefix;
        _outputEntryKeyPrefix = _outputEntryPrefix;
    }

    /// <summary>Gets the distributed cache's key prefix.</summary>
    public string CacheInstanceName { get; }

    /// <summary>Gets the output-cache store's key prefix.</summary>
    public string OutputCacheInstanceName { get; }

    /// <summary>The prefix Redis stores a key of <paramref name="kind"/> under (tags have none: they are evicted through the stock store).</summary>
    public ReadOnlySpan<byte> PrefixOf(KeyKind kind) => kind == KeyKind.CacheKey ? _cachePrefix : _outputEntryPrefix;

    /// <summary>The Redis key of a distributed-cache key or an output-cache entry.</summary>
    public RedisKey RedisKeyOf(KeyKind kind, string key) => (kind == KeyKind.CacheKey ? _cacheKeyPrefix : _outputEntryKeyPrefix).Append(key);

    /// <summary>The prefix of the Redis keys of <paramref name="kind"/>, for a batch of deletes.</summary>
    public RedisKey KeyPrefixOf(KeyKind kind) => kind == KeyKind.CacheKey ? _cacheKeyPrefix : _outputEntryKeyPrefix;
}
