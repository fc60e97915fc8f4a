using System.Globalization;
using Microsoft.AspNetCore.OutputCaching;
using Microsoft.Extensions.Caching.Distributed;
using Microsoft.Extensions.DependencyInjection;
using Resilient.Caching.IntegrationTests.FaultLab;
using Resilient.Caching.IntegrationTests.Infrastructure;
using Xunit;

namespace Resilient.Caching.IntegrationTests.Recovery;

/// <summary>
/// After an outage that kept Redis's data (a frozen server, a blackholed path), nothing the application deleted or
/// overwrote before or during the outage is served again: writes in flight when it began (outcome unknown) and writes
/// skipped inside the window are deleted by the probe before the window closes. Read through the cache and straight
/// from Redis.
/// </summary>
public sealed class AfterOutageTests
{
    private static readonly DistributedCacheEntryOptions Entry = new() { SlidingExpiration = TimeSpan.FromMinutes(20) };

    [Theory]
    [InlineData("sigstop", false)]
    [InlineData("sigstop", true)]
    [InlineData("proxy-blackhole", false)]
    [InlineData("proxy-blackhole", true)]
    [InlineData("client-pause", false)]
    [InlineData("client-pause", true)]
    public async Task Writes_in_flight_and_inside_the_window_leave_no_old_value_behind(string fault, bool async)
    {
        await using var server = await RedisServer.StartNewAsync(cancellationToken: Lab.Ct);
        await using var proxy = new FaultProxy(server.Host, server.Port);
        using var lab = new LabCache(proxy.ConnectionString, o => o.InstanceName = "app:");
        await lab.WarmUpAsync();
        foreach (var key in new[] { "in-flight-remove", "in-flight-set", "removed", "overwritten" })
        {
            await lab.Cache.SetAsync(key, Lab.Bytes("old"), async, Entry);
        }

        await using (await NamedFault.InjectAsync(fault, server, proxy))
        {
            // In flight when the outage begins: they time out, their outcome unknown, and the window opens.
            var inFlight = Task.WhenAll(
                Task.Run(() => lab.Cache.RemoveAsync("in-flight-remove", async), Lab.Ct),
                Task.Run(() => lab.Cache.SetAsync("in-flight-set", Lab.Bytes("new"), async, Entry), Lab.Ct));
            await inFlight.WaitAsync(Lab.CallBound + Lab.Slack, Lab.Ct);
            await lab.WaitForAvailabilityAsync(false, Lab.CallBound);

            // Inside the window: skipped.
            await lab.Cache.RemoveAsync("removed", async);
            await lab.Cache.SetAsync("overwritten", Lab.Bytes("new"), async, Entry);
            Assert.True(lab.Availability.PendingInvalidations >= 4, $"pending {lab.Availability.PendingInvalidations}");
        }

        await lab.RecoverAsync();
        await lab.NothingPendingAsync();

        // A write in flight on the old connection must not land after the replay either: look again a little later.
        await Task.Delay(300, Lab.Ct); // Time for anything late to land: part of the scenario.
        foreach (var key in new[] { "in-flight-remove", "in-flight-set", "removed", "overwritten" })
        {
            Assert.Null(await lab.Cache.GetAsync(key, async));
            Assert.Equal("0", (await server.ExecuteAsync("EXISTS", "app:" + key)).Trim().TrimStart(':'));
        }

        Assert.True(lab.LogCount(Log.IdInvalidationsApplied) >= 1, lab.DescribeLogs());
    }

    /// <summary>
    /// A firewall drops the path while a write is in flight: the kernel holds it unacknowledged and would retransmit it
    /// once the path heals — after the recovery deleted its key — unless the reset aborted the connection. It must
    /// not land, however late.
    /// </summary>
    [Fact]
    public async Task A_write_held_by_the_kernel_during_a_firewall_drop_never_lands_after_recovery()
    {
        NetworkNamespaceRedis.SkipIfUnavailable();
        await using var redis = await NetworkNamespaceRedis.StartAsync(cancellationToken: Lab.Ct);
        // TCP_USER_TIMEOUT (idle + interval × count) longer than the drop: the kernel keeps retransmitting.
        using var lab = new LabCache(redis.ConnectionString, o =>
        {
            o.InstanceName = "app:";
            o.TcpKeepAlive.Idle = TimeSpan.FromSeconds(30);
        });
        await lab.WarmUpAsync();
        await lab.Cache.SetAsync("late", Lab.Bytes("old"), Entry, Lab.Ct);

        await redis.DropTrafficAsync();
        try
        {
            // Sent into a path that drops it: times out, the window opens, the connection is reset.
            await lab.Cache.SetAsync("late", Lab.Bytes("written during the drop"), Entry, Lab.Ct);
            await lab.WaitForAvailabilityAsync(false, Lab.CallBound);

            // The drop lasts past the window, so the probe runs right after the heal, while the kernel's retransmission
            // timer (doubling from 0.2 s) has backed off to seconds: a held segment would arrive after the replay.
            await Task.Delay(TimeSpan.FromSeconds(3), Lab.Ct); // The outage lasts this long: part of the scenario.
        }
        finally
        {
            await redis.RestoreTrafficAsync();
        }

        await lab.RecoverAsync();

        // Retransmissions back off (0.2, 0.4, 0.8, 1.6, 3.2 s…): give a held segment every chance to arrive.
        await Task.Delay(TimeSpan.FromSeconds(4), Lab.Ct); // Time for anything late to land: part of the scenario.
        Assert.Equal("0", (await redis.Redis.ExecuteAsync("EXISTS", "app:late")).Trim().TrimStart(':'));
        Assert.Null(await lab.Cache.GetAsync("late", Lab.Ct));
    }

    [Fact]
    public async Task Twenty_thousand_removes_during_one_outage_are_all_applied()
    {
        const int Count = 20_000;
        await using var server = await RedisServer.StartNewAsync(cancellationToken: Lab.Ct);
        using var lab = new LabCache(server.ConnectionString, o => o.InstanceName = "app:");
        await lab.WarmUpAsync();
        await server.ExecuteAsync("EVAL", $"for i = 1, {Count} do redis.call('HSET', 'app:bulk:' .. i, 'data', 'x') end return {Count}", "0");
        Assert.Equal(Count, await CountBulkAsync(server));

        server.Pause();
        try
        {
            // A frozen Redis times the read out, and the window opens (a busy test process may take the first timeout
            // for its own stall: the next read opens it).
            await lab.OpenWindowAsync(within: 2 * Lab.CallBound);
            for (var i = 1; i <= Count; i++)
            {
                await lab.Cache.RemoveAsync("bulk:" + i.ToString(CultureInfo.InvariantCulture), Lab.Ct);
            }

            // The removes (a key only read during the outage keeps its value, by default).
            Assert.Equal(Count, lab.Availability.PendingInvalidations);
        }
        finally
        {
            server.Resume();
        }

        var recovered = await lab.RecoverAsync();
        Lab.Report($"{Count} removes applied; recovered {recovered.TotalMilliseconds:0} ms after the heal\n{lab.DescribeLogs()}");
        Assert.Equal(0, await CountBulkAsync(server));
        await lab.NothingPendingAsync();
    }

    [Fact]
    public async Task A_tagged_page_evicted_during_the_outage_is_gone_after_it()
    {
        await using var server = await RedisServer.StartNewAsync(cancellationToken: Lab.Ct);
        using var lab = new LabCache(server.ConnectionString, o => o.InstanceName = "app:", services: s => s.AddResilientStackExchangeRedisOutputCache());
        var store = lab.Provider.GetRequiredService<IOutputCacheStore>();
        var availability = lab.Availability;
        await store.SetAsync("page", [1, 2, 3], ["products"], TimeSpan.FromMinutes(10), Lab.Ct);
        Assert.NotNull(await store.GetAsync("page", Lab.Ct));

        server.Pause();
        try
        {
            Assert.Null(await store.GetAsync("page", Lab.Ct));
            Assert.True(await Lab.EventuallyAsync(() => availability.IsOutage, Lab.CallBound + Lab.Slack));
            await store.EvictByTagAsync("products", Lab.Ct);
            Assert.Equal(1, availability.PendingInvalidations);
        }
        finally
        {
            server.Resume();
        }

        // The first read after the window starts the probe, which evicts the tag before the store is used again.
        Assert.True(await Lab.EventuallyAsync(async () => { _ = await store.GetAsync("trigger", Lab.Ct); return availability.IsAvailable; }, (2 * Lab.Window) + Lab.Slack));
        Assert.Null(await store.GetAsync("page", Lab.Ct));
    }

    private static async Task<long> CountBulkAsync(RedisServer server) =>
        long.Parse((await server.ExecuteAsync("EVAL", "return #redis.call('KEYS', 'app:bulk:*')", "0")).Trim().TrimStart(':'), CultureInfo.InvariantCulture);
}
