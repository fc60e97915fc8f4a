using Resilient.Caching.Storage;

namespace Resilient.Caching.Tests.Storage;

/// <summary>What an operation is about: only a distributed-cache key concerns made-up misses and replica reads.</summary>
public sealed class CacheTargetTests
{
    [Fact]
    public void CacheKey_IsACacheKey()
    {
        var target = CacheTarget.CacheKey("k");

        Assert.Equal(KeyKind.CacheKey, target.Kind);
        Assert.Equal("k", target.Key);
        Assert.True(target.IsCacheKey);
    }

    [Fact]
    public void None_HasNoKey_AndIsNoCacheKey()
    {
        // The default's kind is CacheKey (the enum's first value): only the missing key tells it apart.
        Assert.Equal(default, CacheTarget.None);
        Assert.Null(CacheTarget.None.Key);
        Assert.False(CacheTarget.None.IsCacheKey);
        Assert.False(new CacheTarget(KeyKind.CacheKey, null).IsCacheKey);
    }

    [Fact]
    public void OutputCacheEntriesAndTags_AreNoCacheKeys()
    {
        var entry = CacheTarget.OutputCacheEntry("/home");
        var tag = CacheTarget.OutputCacheTag("products");

        Assert.Equal(new CacheTarget(KeyKind.OutputCacheEntry, "/home"), entry);
        Assert.Equal(new CacheTarget(KeyKind.OutputCacheTag, "products"), tag);
        Assert.False(entry.IsCacheKey);
        Assert.False(tag.IsCacheKey);
    }
}
