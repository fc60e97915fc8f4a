using System.Buffers;
using System.Globalization;
using System.Text;
using Microsoft.AspNetCore.OutputCaching;
using Microsoft.Extensions.Caching.Distributed;
using Microsoft.Extensions.Caching.Hybrid;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Resilient.Caching.Configuration;
using Resilient.Caching.Demo;
using Resilient.Caching.IntegrationTests.FaultLab;
using Resilient.Caching.IntegrationTests.Infrastructure;
using Xunit;

namespace Resilient.Caching.IntegrationTests.Compatibility;

/// <summary>A RESP server the compatibility tests run against.</summary>
public interface ICompatibilityServer : IAsyncDisposable
{
    string ConnectionString { get; }

    /// <summary>One command on a connection of its own; the raw RESP reply.</summary>
    Task<string> ExecuteAsync(params string[] args);
}

/// <summary>
/// What an application does with the cache on a healthy server — round trips, expirations, the output-cache store,
/// HybridCache — run against every server the README lists as compatible. The reference server is redis-server;
/// a difference of another server shows up here as a failure, and is fixed or documented.
/// </summary>
public abstract class ServerCompatibilityTests : IAsyncLifetime
{
    private ICompatibilityServer _server = null!;

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    public async ValueTask InitializeAsync() => _server = await StartServerAsync();

    public ValueTask DisposeAsync()
    {
        GC.SuppressFinalize(this);
        return _server.DisposeAsync();
    }

    protected abstract Task<ICompatibilityServer> StartServerAsync();

    [Fact]
    public async Task EveryOperation_RoundTrips_SyncAsyncAndBuffers()
    {
        await using var services = await ServicesAsync();
        var cache = (ResilientDistributedCache)services.GetRequiredService<IDistributedCache>();
        var options = new DistributedCacheEntryOptions { SlidingExpiration = TimeSpan.FromMinutes(1) };

        cache.Set("sync", "one"u8.ToArray(), options);
        Assert.Equal("one", Encoding.UTF8.GetString(cache.Get("sync")!));
        await cache.SetAsync("async", "two"u8.ToArray(), options, Ct);
        Assert.Equal("two", Encoding.UTF8.GetString((await cache.GetAsync("async", Ct))!));
        await cache.SetAsync("seq", new ReadOnlySequence<byte>("three"u8.ToArray()), options, Ct);
        var writer = new ArrayBufferWriter<byte>();
        Assert.True(await cache.TryGetAsync("seq", writer, Ct));
        Assert.Equal("three", Encoding.UTF8.GetString(writer.WrittenSpan));
        Assert.False(cache.TryGet("absent", new ArrayBufferWriter<byte>()));

        cache.Refresh("sync");
        await cache.RefreshAsync("async", Ct);
        cache.Remove("sync");
        await cache.RemoveAsync("async", Ct);
        Assert.Null(cache.Get("sync"));
        Assert.Null(await cache.GetAsync("async", Ct));

        // The stock format: a hash under InstanceName + key.
        Assert.Contains("compat:seq", await _server.ExecuteAsync("KEYS", "compat:*"), StringComparison.Ordinal);
        Assert.True(cache.Availability.IsAvailable);
        Assert.Equal(0, cache.Availability.Outages);
    }

    [Fact]
    public async Task AbsoluteAndSlidingExpirations_AreSetRefreshedAndHonoured()
    {
        await using var services = await ServicesAsync();
        var cache = services.GetRequiredService<IDistributedCache>();

        await cache.SetAsync("abs", [1], new DistributedCacheEntryOptions { AbsoluteExpirationRelativeToNow = TimeSpan.FromSeconds(100) }, Ct);
        await cache.SetAsync("slide", [1], new DistributedCacheEntryOptions { SlidingExpiration = TimeSpan.FromSeconds(50) }, Ct);
        Assert.InRange(await Ttl("compat:abs"), 97_000, 100_000);
        Assert.InRange(await Ttl("compat:slide"), 47_000, 50_000);

        // A read slides the expiration back to its full length.
        await _server.ExecuteAsync("PEXPIRE", "compat:slide", "10000");
        Assert.NotNull(await cache.GetAsync("slide", Ct));
        await Lab.UntilAsync("the read slid the expiration", TimeSpan.FromSeconds(10), async () => await Ttl("compat:slide") > 40_000);

        // An expired entry is gone.
        await cache.SetAsync("short", [1], new DistributedCacheEntryOptions { AbsoluteExpirationRelativeToNow = TimeSpan.FromSeconds(1.2) }, Ct);
        Assert.NotNull(await cache.GetAsync("short", Ct));
        await Lab.UntilAsync("the entry expired", TimeSpan.FromSeconds(10), async () => await cache.GetAsync("short", Ct) is null);
    }

    [Fact]
    public async Task OutputCacheStore_SetsGetsAndEvictsByTag()
    {
        await using var services = await ServicesAsync(s => s.AddResilientStackExchangeRedisOutputCache());
        var store = services.GetRequiredService<IOutputCacheStore>();

        await store.SetAsync("/products", "page"u8.ToArray(), ["products"], TimeSpan.FromMinutes(10), Ct);
        await store.SetAsync("/about", "about"u8.ToArray(), ["static"], TimeSpan.FromMinutes(10), Ct);
        Assert.Equal("page", Encoding.UTF8.GetString((await store.GetAsync("/products", Ct))!));

        await store.EvictByTagAsync("products", Ct);
        Assert.Null(await store.GetAsync("/products", Ct));
        Assert.Equal("about", Encoding.UTF8.GetString((await store.GetAsync("/about", Ct))!));
        Assert.True(services.GetRequiredService<CacheAvailability>().IsAvailable);
    }

    [Fact]
    public async Task HybridCache_UsesTheServerAsItsDistributedLevel()
    {
        await using var services = await ServicesAsync(s => s.AddHybridCache());
        var hybrid = services.GetRequiredService<HybridCache>();
        var options = new HybridCacheEntryOptions { Expiration = TimeSpan.FromMinutes(5), Flags = HybridCacheEntryFlags.DisableLocalCache };
        var runs = 0;

        async Task<string> GetAsync() => await hybrid.GetOrCreateAsync(
            "product:1", _ => ValueTask.FromResult($"computed #{Interlocked.Increment(ref runs)}"), options, cancellationToken: Ct);

        Assert.Equal("computed #1", await GetAsync());
        // HybridCache writes its distributed level in the background.
        await Lab.UntilAsync("HybridCache wrote its distributed level", TimeSpan.FromSeconds(10), async () => (await _server.ExecuteAsync("KEYS", "compat:*")).Contains("compat:product:1", StringComparison.Ordinal));
        Assert.Equal("computed #1", await GetAsync());

        await hybrid.RemoveAsync("product:1", Ct);
        Assert.Equal("computed #2", await GetAsync());
        Assert.Equal(2, runs);
    }

    /// <summary>
    /// The application's container, its cache connected: a call on a cold cache that waits too long for its connection
    /// takes its fallback by design (a synchronous one, or one that reads into the caller's buffer as HybridCache does,
    /// after a few ms), and a loaded machine can take that long to connect. These tests are about the server's answers.
    /// </summary>
    private async Task<ServiceProvider> ServicesAsync(Action<IServiceCollection>? more = null)
    {
        var services = new ServiceCollection();
        services.AddLogging(b => b.SetMinimumLevel(LogLevel.Warning));
        services.AddSingleton(new EnvironmentVariables(_ => null));
        services.AddResilientStackExchangeRedisCache(o =>
        {
            o.Configuration = _server.ConnectionString;
            o.InstanceName = "compat:";
        });
        more?.Invoke(services);
        var provider = services.BuildServiceProvider();
        if (!await provider.GetRequiredService<ResilientRedisCacheServices>().Connection.WaitReadyAsync(TimeSpan.FromSeconds(10), Ct))
        {
            await provider.DisposeAsync();
            Assert.Fail("no connection to the server within 10 s");
        }

        return provider;
    }

    private async Task<long> Ttl(string key)
    {
        var reply = await _server.ExecuteAsync("PTTL", key);
        return long.Parse(reply.AsSpan(1).Trim(), CultureInfo.InvariantCulture);
    }
}

/// <summary>The reference server.</summary>
public sealed class RedisServerCompatibilityTests : ServerCompatibilityTests
{
    protected override async Task<ICompatibilityServer> StartServerAsync() =>
        new Redis(await RedisServer.StartNewAsync(cancellationToken: TestContext.Current.CancellationToken));

    private sealed class Redis(RedisServer server) : ICompatibilityServer
    {
        public string ConnectionString => server.ConnectionString;

        public Task<string> ExecuteAsync(params string[] args) => server.ExecuteAsync(args);

        public ValueTask DisposeAsync() => server.DisposeAsync();
    }
}

/// <summary>Microsoft's Garnet, in this process, started as the demo starts it.</summary>
public sealed class GarnetCompatibilityTests : ServerCompatibilityTests
{
    protected override Task<ICompatibilityServer> StartServerAsync() => Task.FromResult<ICompatibilityServer>(new Garnet(EmbeddedGarnet.Start()));

    private sealed class Garnet(EmbeddedGarnet server) : ICompatibilityServer
    {
        public string ConnectionString => server.ConnectionString;

        public async Task<string> ExecuteAsync(params string[] args)
        {
            using var connection = await RespConnection.ConnectAsync("127.0.0.1", server.Port, TimeSpan.FromSeconds(5));
            return await connection.ExecuteAsync(args, TimeSpan.FromSeconds(10));
        }

        public ValueTask DisposeAsync()
        {
            server.Dispose();
            return ValueTask.CompletedTask;
        }
    }
}
