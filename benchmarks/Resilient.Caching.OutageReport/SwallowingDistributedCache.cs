using System.Net.Sockets;
using Microsoft.Extensions.Caching.Distributed;
using StackExchange.Redis;

namespace Resilient.Caching.OutageReport;

/// <summary>
/// The "ignore exceptions" baseline (what django-redis <c>IGNORE_EXCEPTIONS</c> does): Redis errors become a miss
/// or a skipped write, but there is no back-off, so every call during an outage still waits for the timeout.
/// </summary>
internal sealed class SwallowingDistributedCache(IDistributedCache inner) : IDistributedCache, IDisposable
{
    public byte[]? Get(string key)
    {
        try
        {
            return inner.Get(key);
        }
        catch (Exception exception) when (IsRedisError(exception))
        {
            return null;
        }
    }

    public async Task<byte[]?> GetAsync(string key, CancellationToken token = default)
    {
        try
        {
            return await inner.GetAsync(key, token).ConfigureAwait(false);
        }
        catch (Exception exception) when (IsRedisError(exception))
        {
            return null;
        }
    }

    public void Set(string key, byte[] value, DistributedCacheEntryOptions options) => Swallow(() => inner.Set(key, value, options));

    public Task SetAsync(string key, byte[] value, DistributedCacheEntryOptions options, CancellationToken token = default) =>
        SwallowAsync(inner.SetAsync(key, value, options, token));

    public void Refresh(string key) => Swallow(() => inner.Refresh(key));

    public Task RefreshAsync(string key, CancellationToken token = default) => SwallowAsync(inner.RefreshAsync(key, token));

    public void Remove(string key) => Swallow(() => inner.Remove(key));

    public Task RemoveAsync(string key, CancellationToken token = default) => SwallowAsync(inner.RemoveAsync(key, token));

    public void Dispose() => (inner as IDisposable)?.Dispose();

    private static bool IsRedisError(Exception exception) =>
        exception is RedisException or TimeoutException or SocketException or IOException or ObjectDisposedException;

    private static void Swallow(Action call)
    {
        try
        {
            call();
        }
        catch (Exception exception) when (IsRedisError(exception))
        {
        }
    }

    private static async Task SwallowAsync(Task call)
    {
        try
        {
            await call.ConfigureAwait(false);
        }
        catch (Exception exception) when (IsRedisError(exception))
        {
        }
    }
}
