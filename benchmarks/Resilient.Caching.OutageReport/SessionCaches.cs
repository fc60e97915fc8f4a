using Microsoft.Extensions.Caching.Distributed;
using Microsoft.Extensions.Caching.Hybrid;
using Microsoft.Extensions.DependencyInjection;
using ZiggyCreatures.Caching.Fusion;

namespace Resilient.Caching.OutageReport;

/// <summary>
/// The two calls of one session-like request, in the API each provider offers an application: read the session
/// (true when the stored value came back), then write it back.
/// </summary>
internal interface ISessionCache : IDisposable
{
    Task<bool> ReadAsync(string key);

    Task WriteAsync(string key, byte[] value);
}

/// <summary>An <see cref="IDistributedCache"/>: GetAsync, then SetAsync with a 20-minute sliding expiration.</summary>
internal sealed class DistributedSessionCache(IDistributedCache cache, IDisposable owner) : ISessionCache
{
    private static readonly DistributedCacheEntryOptions Session = new() { SlidingExpiration = TimeSpan.FromMinutes(20) };

    public async Task<bool> ReadAsync(string key) => await cache.GetAsync(key) is not null;

    public Task WriteAsync(string key, byte[] value) => cache.SetAsync(key, value, Session);

    public void Dispose() => owner.Dispose();
}

/// <summary>
/// HybridCache: GetOrCreateAsync whose factory makes a new session (a miss; HybridCache then stores it), then
/// SetAsync. HybridCache has no sliding expiration: 20 minutes absolute.
/// </summary>
internal sealed class HybridSessionCache(ServiceProvider services, byte[] newSession, HybridCacheEntryOptions options) : ISessionCache
{
    private readonly HybridCache _cache = services.GetRequiredService<HybridCache>();

    public async Task<bool> ReadAsync(string key)
    {
        var created = new Created(newSession);
        await _cache.GetOrCreateAsync(key, created, static (state, _) => state.Create(), options);
        return !created.Invoked;
    }

    public Task WriteAsync(string key, byte[] value) => _cache.SetAsync(key, value, options).AsTask();

    public void Dispose() => services.Dispose();
}

/// <summary>
/// FusionCache: GetOrSetAsync whose factory makes a new session (a miss; FusionCache then stores it), then SetAsync.
/// FusionCache has no sliding expiration: Duration 20 minutes.
/// </summary>
internal sealed class FusionSessionCache(ServiceProvider services, byte[] newSession, FusionCacheEntryOptions options) : ISessionCache
{
    private readonly IFusionCache _cache = services.GetRequiredService<IFusionCache>();

    public async Task<bool> ReadAsync(string key)
    {
        var created = new Created(newSession);
        await _cache.GetOrSetAsync<byte[]>(key, (_, _) => created.Create().AsTask(), default, options);
        return !created.Invoked;
    }

    public Task WriteAsync(string key, byte[] value) => _cache.SetAsync(key, value, options).AsTask();

    public void Dispose() => services.Dispose();
}

/// <summary>One read's factory: tells whether it ran (the stored session was not there or not reachable).</summary>
internal sealed class Created(byte[] value)
{
    public bool Invoked { get; private set; }

    public ValueTask<byte[]> Create()
    {
        Invoked = true;
        return ValueTask.FromResult(value);
    }
}
