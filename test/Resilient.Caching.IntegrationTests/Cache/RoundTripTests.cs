using System.Buffers;
using System.Globalization;
using System.Text;
using Microsoft.Extensions.Caching.Distributed;
using Microsoft.Extensions.Caching.StackExchangeRedis;
using Microsoft.Extensions.Options;
using Resilient.Caching.IntegrationTests.FaultLab;
using Resilient.Caching.IntegrationTests.Infrastructure;
using Xunit;

namespace Resilient.Caching.IntegrationTests.Cache;

/// <summary>
/// With Redis healthy the decorator is the stock provider: same data, same expirations, same keys. Each test waits for
/// the connection before its first call: a call on a cold cache that waits too long for its connection takes its
/// fallback by design (a synchronous one after a few ms), and a loaded machine can take that long to connect.
/// </summary>
public sealed class RoundTripTests : IAsyncLifetime
{
    private RedisServer _redis = null!;

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    public async ValueTask InitializeAsync() => _redis = await RedisServer.StartNewAsync(cancellationToken: Ct);

    public ValueTask DisposeAsync() => _redis.DisposeAsync();

    [Fact]
    public async Task EveryOperation_RoundTrips_SyncAndAsync()
    {
        using var host = new LabCache(_redis.ConnectionString);
        await host.WaitForConnectionAsync();
        var cache = host.Cache;
        var options = new DistributedCacheEntryOptions { SlidingExpiration = TimeSpan.FromMinutes(1) };

        cache.Set("sync", "one"u8.ToArray(), options);
        Assert.Equal("one", Encoding.UTF8.GetString(cache.Get("sync")!));
        await cache.SetAsync("async", "two"u8.ToArray(), options, Ct);
        Assert.Equal("two", Encoding.UTF8.GetString((await cache.GetAsync("async", Ct))!));

        cache.Set("seq", new ReadOnlySequence<byte>("three"u8.ToArray()), options);
        var writer = new ArrayBufferWriter<byte>();
        Assert.True(await cache.TryGetAsync("seq", writer, Ct));
        Assert.Equal("three", Encoding.UTF8.GetString(writer.WrittenSpan));
        await cache.SetAsync("seq2", new ReadOnlySequence<byte>("four"u8.ToArray()), options, Ct);
        writer.Clear();
        Assert.True(cache.TryGet("seq2", writer));
        Assert.Equal("four", Encoding.UTF8.GetString(writer.WrittenSpan));
        Assert.False(cache.TryGet("absent", new ArrayBufferWriter<byte>()));

        cache.Refresh("sync");
        await cache.RefreshAsync("async", Ct);
        cache.Remove("sync");
        await cache.RemoveAsync("async", Ct);
        Assert.Null(cache.Get("sync"));
        Assert.Null(await cache.GetAsync("async", Ct));
        Assert.True(host.Availability.IsAvailable);
    }

    [Fact]
    public async Task DataIsInterchangeableWithTheStockProvider_IncludingInstanceName()
    {
        using var host = new LabCache(_redis.ConnectionString, o => o.InstanceName = "app:");
        await host.WaitForConnectionAsync();
        using var stock = new RedisCache(Options.Create(new RedisCacheOptions { Configuration = _redis.ConnectionString, InstanceName = "app:" }));

        await host.Cache.SetStringAsync("ours", "written by ours", Ct);
        await stock.SetStringAsync("stock", "written by stock", Ct);

        Assert.Equal("written by ours", await stock.GetStringAsync("ours", Ct));
        Assert.Equal("written by stock", await host.Cache.GetStringAsync("stock", Ct));
        Assert.Contains("app:ours", await _redis.ExecuteAsync("KEYS", "app:*"), StringComparison.Ordinal);
    }

    [Fact]
    public async Task AbsoluteAndSlidingExpiration_BehaveAsTheStockProvider()
    {
        using var host = new LabCache(_redis.ConnectionString);
        await host.WaitForConnectionAsync();
        using var stock = new RedisCache(Options.Create(new RedisCacheOptions { Configuration = _redis.ConnectionString }));
        var absolute = new DistributedCacheEntryOptions { AbsoluteExpirationRelativeToNow = TimeSpan.FromSeconds(100) };
        var sliding = new DistributedCacheEntryOptions { SlidingExpiration = TimeSpan.FromSeconds(50) };

        await host.Cache.SetAsync("abs-ours", [1], absolute, Ct);
        await stock.SetAsync("abs-stock", [1], absolute, Ct);
        await host.Cache.SetAsync("slide-ours", [1], sliding, Ct);
        await stock.SetAsync("slide-stock", [1], sliding, Ct);

        AssertClose(await Ttl("abs-stock"), await Ttl("abs-ours"));
        AssertClose(await Ttl("slide-stock"), await Ttl("slide-ours"));
        Assert.InRange(await Ttl("abs-ours"), 98_000, 100_000);
        Assert.InRange(await Ttl("slide-ours"), 48_000, 50_000);

        // A read slides the expiration back to its full length, as the stock provider does.
        await _redis.ExecuteAsync("PEXPIRE", "slide-ours", "10000");
        Assert.NotNull(await host.Cache.GetAsync("slide-ours", Ct));
        Assert.True(await Lab.EventuallyAsync(async () => await Ttl("slide-ours") > 40_000, TimeSpan.FromSeconds(10)), "the read did not slide the expiration");

        // And an entry that has expired is gone for both.
        await host.Cache.SetAsync("short", [1], new DistributedCacheEntryOptions { AbsoluteExpirationRelativeToNow = TimeSpan.FromSeconds(1.2) }, Ct);
        Assert.NotNull(await host.Cache.GetAsync("short", Ct));
        Assert.True(await Lab.EventuallyAsync(async () => await host.Cache.GetAsync("short", Ct) is null, TimeSpan.FromSeconds(10)), "the entry did not expire");
        Assert.Null(await stock.GetAsync("short", Ct));
    }

    private async Task<long> Ttl(string key)
    {
        var reply = await _redis.ExecuteAsync("PTTL", key);
        return long.Parse(reply.AsSpan(1).Trim(), CultureInfo.InvariantCulture);
    }

    private static void AssertClose(long expected, long actual) => Assert.InRange(actual, expected - 2_000, expected + 2_000);
}
