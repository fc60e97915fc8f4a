using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Session;
using Microsoft.Extensions.Caching.Distributed;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Resilient.Caching.IntegrationTests.Infrastructure;
using Xunit;

namespace Resilient.Caching.IntegrationTests.FaultLab;

/// <summary>
/// Scenario 9, at the <see cref="IDistributedCache"/> level: a request reads its session, the read fails (so the
/// application sees no session and starts an empty one), then the request writes its session back. That write
/// must be skipped, or the real session stored in Redis is replaced by an empty one once Redis is reachable. And
/// however many requests read the key during the outage, none of the values they compute from their made-up misses
/// lands once Redis is back while the key holds its real value (with the library's defaults): for a plain key and for
/// an ASP.NET Core session. A key that is absent takes the first such write, as after a real miss.
/// </summary>
public sealed class SessionOverwriteTests
{
    private const string Key = "session:lab-user";
    private const string RealValue = "REAL-SESSION-WITH-CART";
    private static readonly TimeSpan IdleTimeout = TimeSpan.FromMinutes(20);

    [Theory]
    [InlineData("sigstop", false)]
    [InlineData("sigstop", true)]
    [InlineData("proxy-blackhole", false)]
    [InlineData("proxy-blackhole", true)]
    [InlineData("connection-reset", false)]
    [InlineData("connection-reset", true)]
    public async Task A_failed_session_read_followed_by_a_write_never_replaces_the_stored_session(string fault, bool async)
    {
        await using var server = await RedisServer.StartNewAsync(cancellationToken: Lab.Ct);
        await using var proxy = new FaultProxy(server.Host, server.Port);
        // The defaults keep the keys read during the outage: the stored session must survive as it was.
        using var lab = new LabCache(proxy.ConnectionString);
        await lab.WarmUpAsync();
        var session = Lab.Bytes("session: user=42; cart=[book, lamp]; " + new string('x', 200));
        var emptySession = Lab.Bytes("session: (new)");
        var entry = new DistributedCacheEntryOptions { SlidingExpiration = TimeSpan.FromMinutes(20) };

        // Connected first: a synchronous call that waits more than a moment for a cold first connect takes its fallback.
        await lab.WaitForConnectionAsync();
        await lab.Cache.SetAsync(Key, session, async, entry);
        var stored = await lab.Cache.GetAsync(Key, async);
        Assert.True(stored is not null && stored.SequenceEqual(session), $"the stored session was not read back.\n{lab.DescribeLogs()}");
        var writesBefore = await WritesAsync(server);

        // The request: the session read fails...
        await using (await NamedFault.InjectAsync(fault, server, proxy))
        {
            Assert.Null(await lab.Cache.GetAsync(Key, async));
            Assert.False(lab.Availability.IsAvailable, "the failed read did not open the window");

            // ...so the application works with an empty session and writes it back at the end of the request.
            await lab.Cache.SetAsync(Key, emptySession, async, entry);
        }

        // Once Redis is used again, the session stored before the failure is still there.
        byte[]? after = null;
        var recovered = await Lab.EventuallyAsync(async () => (after = await lab.Cache.GetAsync(Key, async)) is not null, Lab.RecoveryBound);
        Assert.True(recovered, $"the cache did not read the session again after the fault healed.\n{lab.DescribeLogs()}");
        Assert.Equal(session, after);
        Assert.Equal(writesBefore, await WritesAsync(server));
        Lab.Report($"{fault} ({(async ? "async" : "sync")}): the empty session write was skipped; the stored session survived.");
    }

    [Theory]
    [InlineData(2, false)]
    [InlineData(2, true)]
    [InlineData(50, false)]
    [InlineData(50, true)]
    public async Task Values_computed_from_made_up_misses_never_replace_the_stored_value_however_many_readers(int readers, bool async)
    {
        const string key = "cart:lab-user";
        await using var server = await RedisServer.StartNewAsync(cancellationToken: Lab.Ct);
        using var lab = new LabCache(server.ConnectionString);
        await lab.WaitForConnectionAsync();
        await lab.Cache.SetAsync(key, Lab.Bytes(RealValue), async);
        Assert.Equal(RealValue, await StoredEntries.ValueAsync(server, key));

        // Every reader's read during the outage is a made-up miss...
        await lab.WhileRedisIsFrozenAsync(server, async, async () =>
        {
            var misses = await ReadAsync(readers, async, async _ => Lab.Text(await lab.Cache.GetAsync(key, async)));
            Assert.All(misses, Assert.Null);
        });

        // ...and once Redis is used again, each writes back what it computed from it.
        for (var i = 0; i < readers; i++)
        {
            await lab.Cache.SetAsync(key, Lab.Bytes($"EMPTY-from-miss-{i}"), async);
            Assert.True(RealValue == await StoredEntries.ValueAsync(server, key), $"the write of reader {i + 1} of {readers} replaced the stored value.\n{lab.DescribeLogs()}");
        }

        Assert.Equal(RealValue, Lab.Text(await lab.Cache.GetAsync(key, async)));
        Lab.Report($"{readers} readers ({(async ? "async" : "sync")}): none of their {readers} writes from a made-up miss landed; the stored value survived.");
    }

    [Theory]
    [InlineData(2, false)]
    [InlineData(2, true)]
    [InlineData(50, false)]
    [InlineData(50, true)]
    public async Task When_the_key_is_absent_the_first_write_from_a_made_up_miss_lands(int readers, bool async)
    {
        const string key = "cart:new-user";
        await using var server = await RedisServer.StartNewAsync(cancellationToken: Lab.Ct);
        using var lab = new LabCache(server.ConnectionString);
        await lab.WarmUpAsync();

        await lab.WhileRedisIsFrozenAsync(server, async, async () =>
            Assert.All(await ReadAsync(readers, async, async _ => Lab.Text(await lab.Cache.GetAsync(key, async))), Assert.Null));
        Assert.Null(await StoredEntries.ValueAsync(server, key));

        await lab.Cache.SetAsync(key, Lab.Bytes("EMPTY-from-miss-0"), async);
        Assert.True("EMPTY-from-miss-0" == await StoredEntries.ValueAsync(server, key), $"the first write of an absent key did not land.\n{lab.DescribeLogs()}");

        // The others land too, as after a real miss: whatever the last one wrote is there, and nothing deleted it.
        for (var i = 1; i < readers; i++)
        {
            await lab.Cache.SetAsync(key, Lab.Bytes($"EMPTY-from-miss-{i}"), async);
        }

        var stored = await StoredEntries.ValueAsync(server, key);
        Assert.StartsWith("EMPTY-from-miss-", stored, StringComparison.Ordinal);
        Assert.Equal(stored, Lab.Text(await lab.Cache.GetAsync(key, async)));
        Lab.Report($"{readers} readers ({(async ? "async" : "sync")}), key absent: the first write landed; Redis holds {stored}.");
    }

    /// <summary>
    /// The same through ASP.NET Core's own session (<see cref="DistributedSessionStore"/>, as the session middleware
    /// creates it): each request's load during the outage is a made-up miss, so it starts an empty session, and commits
    /// it once Redis is back. The session's loads are synchronous (the first access) or <c>LoadAsync</c>; its commit is
    /// always asynchronous. The application logs <c>Microsoft.AspNetCore</c> at Warning, as the templates set it.
    /// </summary>
    [Theory]
    [InlineData(2, false)]
    [InlineData(2, true)]
    [InlineData(50, false)]
    [InlineData(50, true)]
    public async Task Sessions_started_empty_on_made_up_misses_never_replace_the_stored_session(int readers, bool async)
    {
        await using var server = await RedisServer.StartNewAsync(cancellationToken: Lab.Ct);
        using var lab = new LabCache(server.ConnectionString);
        await AssertSessionSurvivesAsync(lab, server, new DistributedSessionStore(lab.Cache, NullLoggerFactory.Instance), readers, async);
    }

    private static async Task AssertSessionSurvivesAsync(LabCache lab, RedisServer server, DistributedSessionStore store, int readers, bool async)
    {
        ISession Open(bool isNew) => store.Create(Key, IdleTimeout, TimeSpan.FromSeconds(10), () => true, isNew);

        await lab.WaitForConnectionAsync();

        var real = Open(isNew: true);
        real.SetString("cart", RealValue);
        await real.CommitAsync(Lab.Ct);
        Assert.Contains(RealValue, await StoredEntries.ValueAsync(server, Key), StringComparison.Ordinal);

        var sessions = new ISession[readers];
        await lab.WhileRedisIsFrozenAsync(server, async, async () =>
        {
            var carts = await ReadAsync(readers, async, async i =>
            {
                var session = sessions[i] = Open(isNew: false);
                if (async)
                {
                    await session.LoadAsync(Lab.Ct);
                }

                return session.GetString("cart"); // Loads the session synchronously when it was not loaded yet.
            });
            Assert.All(carts, Assert.Null);
        });

        for (var i = 0; i < readers; i++)
        {
            sessions[i].SetString("cart", $"EMPTY-from-miss-{i}");
            await sessions[i].CommitAsync(Lab.Ct);
            var stored = await StoredEntries.ValueAsync(server, Key);
            Assert.True(stored?.Contains(RealValue, StringComparison.Ordinal) == true, $"the session committed by request {i + 1} of {readers} replaced the stored one.\n{lab.DescribeLogs()}");
        }

        var after = Open(isNew: false);
        await after.LoadAsync(Lab.Ct);
        Assert.Equal(RealValue, after.GetString("cart"));
        Lab.Report($"{readers} sessions ({(async ? "LoadAsync" : "sync load")}): none of the empty sessions committed after the outage replaced the stored one.");
    }

    /// <summary><paramref name="readers"/> reads: concurrent when asynchronous, one after the other when synchronous.</summary>
    private static async Task<string?[]> ReadAsync(int readers, bool async, Func<int, Task<string?>> read)
    {
        if (async)
        {
            return await Task.WhenAll(Enumerable.Range(0, readers).Select(read));
        }

        var results = new string?[readers];
        for (var i = 0; i < readers; i++)
        {
            results[i] = await read(i);
        }

        return results;
    }

    private static async Task<long> WritesAsync(RedisServer server) =>
        (await server.GetCommandCallsAsync()).TryGetValue("hmset", out var calls) ? calls : 0;
}
