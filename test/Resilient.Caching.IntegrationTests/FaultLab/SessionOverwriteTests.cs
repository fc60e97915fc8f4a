using Microsoft.Extensions.Caching.Distributed;
using Resilient.Caching.IntegrationTests.Infrastructure;
using Xunit;

namespace Resilient.Caching.IntegrationTests.FaultLab;

/// <summary>
/// Scenario 9, at the <see cref="IDistributedCache"/> level: a request reads its session, the read fails (so the
/// application sees no session and starts an empty one), then the request writes its session back. That write
/// must be skipped, or the real session stored in Redis is replaced by an empty one once Redis is reachable.
/// </summary>
public sealed class SessionOverwriteTests
{
    private const string Key = "session:lab-user";

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
        // Keys read during the outage kept (the default deletes them at recovery): the stored session must survive as it was.
        using var lab = new LabCache(proxy.ConnectionString, o => o.InvalidateKeysReadDuringOutage = false);
        var session = Lab.Bytes("session: user=42; cart=[book, lamp]; " + new string('x', 200));
        var emptySession = Lab.Bytes("session: (new)");
        var entry = new DistributedCacheEntryOptions { SlidingExpiration = TimeSpan.FromMinutes(20) };

        // The session stored before the request, on a connected cache (a synchronous call that waited more than a
        // few ms for a cold connection takes its fallback by design, and a loaded machine can take that long).
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

    private static async Task<long> WritesAsync(RedisServer server) =>
        (await server.GetCommandCallsAsync()).TryGetValue("hmset", out var calls) ? calls : 0;
}
