using System.Text;
using Resilient.Caching.Topology;

namespace Resilient.Caching.Tests.Topology;

/// <summary>The key-to-slot rule, against the values Redis itself gives (CLUSTER KEYSLOT) and its hash-tag rules.</summary>
public sealed class HashSlotTests
{
    [Theory]
    [InlineData("foo", 12182)]
    [InlineData("123456789", 12739)]
    [InlineData("", 0)]
    public void Slot_IsRedisOwn(string key, int slot) => Assert.Equal(slot, HashSlot.Of(Encoding.UTF8.GetBytes(key)));

    [Theory]
    [InlineData("{user1000}.following", "user1000")]
    [InlineData("foo{bar}{zap}", "bar")]
    [InlineData("foo{{bar}}zap", "{bar")]
    [InlineData("foo{}{bar}", "foo{}{bar}")]
    [InlineData("foo{bar", "foo{bar")]
    public void HashTag_FirstNonEmptyBracePairDecides(string key, string hashed) =>
        Assert.Equal(HashSlot.Of(Encoding.UTF8.GetBytes(hashed)), HashSlot.Of(Encoding.UTF8.GetBytes(key)));

    [Theory]
    [InlineData("app:", "session:42")]
    [InlineData("", "k")]
    [InlineData("{tenant}:", "anything")]
    [InlineData("app:", "ключ-{tag}-ü")]
    public void PrefixAndKey_HashAsTheKeyRedisStores(string prefix, string key) =>
        Assert.Equal(HashSlot.Of(Encoding.UTF8.GetBytes(prefix + key)), HashSlot.Of(Encoding.UTF8.GetBytes(prefix), key));

    [Fact]
    public void LongKey_HashesAsTheWholeKey()
    {
        var key = new string('x', 5000) + "{tag}";
        Assert.Equal(HashSlot.Of(Encoding.UTF8.GetBytes("tag")), HashSlot.Of("app:"u8, key));
    }
}
