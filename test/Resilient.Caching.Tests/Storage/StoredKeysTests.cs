using System.Text;
using Resilient.Caching.Storage;
using StackExchange.Redis;

namespace Resilient.Caching.Tests.Storage;

/// <summary>Where the stock components keep their keys: the prefixes of one registration and the field of an entry's bytes.</summary>
public sealed class StoredKeysTests
{
    [Fact]
    public void CacheKey_IsStoredUnderTheCachesInstanceName()
    {
        var keys = new StoredKeys("app:");

        Assert.Equal((RedisKey)"app:user:1", keys.RedisKeyOf(KeyKind.CacheKey, "user:1"));
        Assert.Equal((RedisKey)"app:", keys.KeyPrefixOf(KeyKind.CacheKey));
        Assert.Equal("app:"u8.ToArray(), keys.PrefixOf(KeyKind.CacheKey).ToArray());
    }

    [Fact]
    public void OutputCacheEntry_IsStoredUnderTheStoresInstanceName_AndTheStockInfix()
    {
        var keys = new StoredKeys("app:", "pages:");

        Assert.Equal("app:", keys.CacheInstanceName);
        Assert.Equal("pages:", keys.OutputCacheInstanceName);
        Assert.Equal((RedisKey)"pages:__MSOCV_/home", keys.RedisKeyOf(KeyKind.OutputCacheEntry, "/home"));
        Assert.Equal((RedisKey)"pages:__MSOCV_", keys.KeyPrefixOf(KeyKind.OutputCacheEntry));
        Assert.Equal("pages:__MSOCV_"u8.ToArray(), keys.PrefixOf(KeyKind.OutputCacheEntry).ToArray());
        Assert.StartsWith(StoredKeys.OutputCacheInfix, StoredKeys.OutputCacheEntryInfix, StringComparison.Ordinal);
    }

    [Fact]
    public void OutputCacheInstanceName_DefaultsToTheCaches()
    {
        var keys = new StoredKeys("app:");

        Assert.Equal("app:", keys.OutputCacheInstanceName);
        Assert.Equal((RedisKey)"app:__MSOCV_/home", keys.RedisKeyOf(KeyKind.OutputCacheEntry, "/home"));
    }

    [Fact]
    public void NoInstanceName_KeysAreStoredAsGiven()
    {
        var keys = new StoredKeys(null);

        Assert.Equal(string.Empty, keys.CacheInstanceName);
        Assert.Equal(string.Empty, keys.OutputCacheInstanceName);
        Assert.Equal((RedisKey)"k", keys.RedisKeyOf(KeyKind.CacheKey, "k"));
        Assert.Equal((RedisKey)"__MSOCV_k", keys.RedisKeyOf(KeyKind.OutputCacheEntry, "k"));
        Assert.Equal(0, keys.PrefixOf(KeyKind.CacheKey).Length);
    }

    [Fact]
    public void Prefixes_AreUtf8_AsRedisHashesThem()
    {
        var keys = new StoredKeys("café:");

        Assert.Equal(Encoding.UTF8.GetBytes("café:"), keys.PrefixOf(KeyKind.CacheKey).ToArray());
        Assert.Equal(Encoding.UTF8.GetBytes("café:ü"), (byte[])keys.RedisKeyOf(KeyKind.CacheKey, "ü")!);
    }

    [Fact]
    public void DataField_IsTheStockCachesHashField() => Assert.Equal((RedisValue)"data", StoredKeys.DataField);
}
