using System.Globalization;
using Resilient.Caching.IntegrationTests.Infrastructure;
using Xunit;

namespace Resilient.Caching.IntegrationTests.FaultLab;

/// <summary>
/// What Redis itself holds for the cache's keys, asked on a connection of its own rather than through the cache under
/// test (whose read would count as a read, and whose miss may be made up). The stock provider keeps an entry as a hash
/// whose <c>data</c> field is the value; the lab registers no <c>InstanceName</c>, so the Redis key is the cache key.
/// </summary>
internal static class StoredEntries
{
    /// <summary>The value stored for <paramref name="key"/> (its bytes read as UTF-8), or null when the key is absent.</summary>
    public static async Task<string?> ValueAsync(RedisServer server, string key)
    {
        var reply = await server.ExecuteAsync("HGET", key, "data");
        if (reply.StartsWith("$-1", StringComparison.Ordinal))
        {
            return null;
        }

        Assert.True(reply.StartsWith('$') && reply.EndsWith("\r\n", StringComparison.Ordinal), $"unexpected HGET reply: {reply}");
        return reply[(reply.IndexOf("\r\n", StringComparison.Ordinal) + 2)..^2];
    }

    /// <summary>How many of <paramref name="keys"/> exist in Redis.</summary>
    public static async Task<long> CountAsync(RedisServer server, IEnumerable<string> keys) =>
        Integer(await server.ExecuteAsync(["EXISTS", .. keys]));

    /// <summary>Every key the database holds (KEYS: for the lab's small databases only; names without CR or LF).</summary>
    public static async Task<IReadOnlySet<string>> AllKeysAsync(RedisServer server)
    {
        var reply = await server.ExecuteAsync("KEYS", "*");
        Assert.True(reply.StartsWith('*'), $"not an array reply: {reply}");
        var lines = reply.Split("\r\n");
        var keys = new HashSet<string>(StringComparer.Ordinal);
        for (var i = 1; i + 1 < lines.Length; i += 2)
        {
            Assert.True(lines[i].StartsWith('$'), $"unexpected KEYS reply: {reply}");
            keys.Add(lines[i + 1]);
        }

        Assert.Equal(int.Parse(lines[0].AsSpan(1), CultureInfo.InvariantCulture), keys.Count);
        return keys;
    }

    private static long Integer(string reply)
    {
        Assert.True(reply.StartsWith(':'), $"not an integer reply: {reply}");
        return long.Parse(reply.AsSpan(1).Trim(), CultureInfo.InvariantCulture);
    }
}
