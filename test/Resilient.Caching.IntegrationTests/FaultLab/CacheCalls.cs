using Microsoft.Extensions.Caching.Distributed;

namespace Resilient.Caching.IntegrationTests.FaultLab;

/// <summary>
/// The synchronous or the asynchronous API of a cache, as a theory's <c>async</c> case asks: every scenario runs both,
/// because the synchronous path has a timing of its own (no caller token, a blocked thread).
/// </summary>
internal static class CacheCalls
{
    private static readonly DistributedCacheEntryOptions NoExpiry = new();

    public static async Task<byte[]?> GetAsync(this IDistributedCache cache, string key, bool async) =>
        async ? await cache.GetAsync(key, Lab.Ct) : cache.Get(key);

    public static async Task SetAsync(this IDistributedCache cache, string key, byte[] value, bool async, DistributedCacheEntryOptions? entry = null)
    {
        if (async)
        {
            await cache.SetAsync(key, value, entry ?? NoExpiry, Lab.Ct);
        }
        else
        {
            cache.Set(key, value, entry ?? NoExpiry);
        }
    }

    public static async Task RemoveAsync(this IDistributedCache cache, string key, bool async)
    {
        if (async)
        {
            await cache.RemoveAsync(key, Lab.Ct);
        }
        else
        {
            cache.Remove(key);
        }
    }
}
