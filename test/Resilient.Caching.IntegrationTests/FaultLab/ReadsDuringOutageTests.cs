using Resilient.Caching.IntegrationTests.Infrastructure;
using Xunit;

namespace Resilient.Caching.IntegrationTests.FaultLab;

/// <summary>
/// A read during an outage deletes nothing by default: keys read while Redis was frozen (answered with made-up misses)
/// still hold their values once it is back, so nobody is signed out and no cart is emptied by an outage. Only the keys
/// under a prefix the application opted in (<c>InvalidateKeyPrefixesReadDuringOutage</c>) are deleted at recovery.
/// </summary>
public sealed class ReadsDuringOutageTests
{
    private const int KeysPerPrefix = 10;

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Keys_read_during_an_outage_keep_their_values_after_it(bool async)
    {
        var keys = Enumerable.Range(0, 2 * KeysPerPrefix).Select(i => $"profile:{i}").ToArray();
        await using var server = await RedisServer.StartNewAsync(cancellationToken: Lab.Ct);
        using var lab = new LabCache(server.ConnectionString);
        await StoreAsync(lab, keys, async);

        await lab.WhileRedisIsFrozenAsync(server, async, async () =>
        {
            await ReadAllMissAsync(lab, keys, async);
            Assert.Equal(0, lab.Availability.PendingInvalidations); // Nothing to delete at recovery.
        });

        await AssertStoredAsync(lab, server, keys, async);
        Lab.Report($"{keys.Length} keys read during the outage ({(async ? "async" : "sync")}): all still hold their values after it.");
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Only_the_keys_under_an_opted_in_prefix_are_deleted(bool async)
    {
        var revoked = Enumerable.Range(0, KeysPerPrefix).Select(i => $"revoked:{i}").ToArray();
        var kept = Enumerable.Range(0, KeysPerPrefix).Select(i => $"profile:{i}").ToArray();
        await using var server = await RedisServer.StartNewAsync(cancellationToken: Lab.Ct);
        using var lab = new LabCache(server.ConnectionString, o => o.InvalidateKeyPrefixesReadDuringOutage = "revoked:");
        await StoreAsync(lab, [.. revoked, .. kept], async);

        await lab.WhileRedisIsFrozenAsync(server, async, async () =>
        {
            await ReadAllMissAsync(lab, [.. revoked, .. kept], async);
            Assert.Equal(revoked.Length, lab.Availability.PendingInvalidations);
        });

        Assert.Equal(0, await StoredEntries.CountAsync(server, revoked));
        await AssertStoredAsync(lab, server, kept, async);
        Lab.Report($"opt-in prefix ({(async ? "async" : "sync")}): the {revoked.Length} keys under it were deleted at recovery, the {kept.Length} others kept.");
    }

    private static string ValueOf(string key) => "value of " + key;

    private static async Task StoreAsync(LabCache lab, IEnumerable<string> keys, bool async)
    {
        // Connected first: a synchronous call that waits more than a moment for a cold first connect takes its fallback.
        await lab.WaitForConnectionAsync();
        foreach (var key in keys)
        {
            await lab.Cache.SetAsync(key, Lab.Bytes(ValueOf(key)), async);
        }
    }

    /// <summary>Inside the window every read is a made-up miss: the keys do hold values.</summary>
    private static async Task ReadAllMissAsync(LabCache lab, IEnumerable<string> keys, bool async)
    {
        foreach (var key in keys)
        {
            Assert.Null(await lab.Cache.GetAsync(key, async));
        }
    }

    /// <summary>Each key holds its value in Redis, and the cache reads it back (a hit, not a made-up miss: the window is closed).</summary>
    private static async Task AssertStoredAsync(LabCache lab, RedisServer server, IEnumerable<string> keys, bool async)
    {
        foreach (var key in keys)
        {
            Assert.True(ValueOf(key) == await StoredEntries.ValueAsync(server, key), $"{key} lost its value.\n{lab.DescribeLogs()}");
            Assert.Equal(ValueOf(key), Lab.Text(await lab.Cache.GetAsync(key, async)));
        }
    }
}
