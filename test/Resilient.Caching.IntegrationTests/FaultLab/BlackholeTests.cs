using System.Diagnostics;
using Resilient.Caching.IntegrationTests.Infrastructure;
using Xunit;

namespace Resilient.Caching.IntegrationTests.FaultLab;

/// <summary>
/// Scenario 3: the path to Redis silently drops everything while traffic flows. Only the first command of each
/// window waits out the operation timeout; after the heal the cache is used at the first probe (the probe runs on
/// a fresh connection, so the dead socket does not matter).
/// </summary>
public sealed class BlackholeTests
{
    // From the heal to the first hit: what is left of the window, the probe, and slack.
    private static readonly TimeSpan RecoveryBound = Lab.Window + Lab.CallBound;

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Proxy_blackhole_while_traffic_flows(bool async)
    {
        await using var server = await RedisServer.StartNewAsync(cancellationToken: Lab.Ct);
        await using var proxy = new FaultProxy(server.Host, server.Port);
        using var lab = new LabCache(proxy.ConnectionString);

        // The proxy's blackhole is permanent for the connections it froze, as when a firewall forgot them.
        var report = await Outage.RunAsync(lab, async,
            new Fault("proxy-blackhole", () => { proxy.SetMode(FaultMode.Blackhole); return Task.CompletedTask; }, () => { proxy.SetMode(FaultMode.PassThrough); return Task.CompletedTask; }),
            new OutageOptions { CountCommands = () => CacheCommands.ReadsAndWritesAsync(server) });

        report.AssertSurvived(RecoveryBound);
        Assert.True(report.FirstHitAfterHeal - report.HealAt <= RecoveryBound, $"first hit too late: {report}");
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Healed_just_after_a_probe_waited_in_vain_the_next_probe_uses_Redis(bool async)
    {
        // The worst moment to heal: just after a probe gave up on a connection attempt made during the blackhole.
        // That attempt never completes (its handshake was swallowed), and connecting may take longer than a window
        // (the default connect timeout, 5 s, against a 1.5 s window): the next probe must connect afresh, not wait
        // for it again.
        await using var server = await RedisServer.StartNewAsync(cancellationToken: Lab.Ct);
        await using var proxy = new FaultProxy(server.Host, server.Port);
        using var lab = new LabCache(proxy.ConnectionString, o => o.ConnectTimeout = TimeSpan.FromSeconds(5));
        await lab.WarmUpAsync();

        proxy.SetMode(FaultMode.Blackhole);
        Assert.Null(await lab.Cache.GetAsync("lab:warm-up", async));
        Assert.False(lab.Availability.IsAvailable);
        Assert.True(await Lab.EventuallyAsync(() => lab.Availability.RetryAfter == TimeSpan.Zero, Lab.Window + Lab.Slack));

        // The caller that starts the probe does not wait for it: the probe waits for the connection on its own.
        var caller = Stopwatch.StartNew();
        Assert.Null(await lab.Cache.GetAsync("lab:warm-up", async));
        Assert.True(caller.Elapsed < Lab.SlowCall, $"the caller waited for the probe ({caller.Elapsed.TotalMilliseconds:0} ms)");
        Assert.True(await Lab.EventuallyAsync(() => lab.LogCount(Log.IdProbeFailed) == 1, Lab.CallBound), $"the probe did not fail.\n{lab.DescribeLogs()}");

        proxy.SetMode(FaultMode.PassThrough);
        var healed = await lab.UsedAgainAsync(async, within: TimeSpan.FromSeconds(20));
        Lab.Report($"used again {healed.TotalMilliseconds:0} ms after the heal\n{lab.DescribeLogs()}");

        // One window (what was left of it) plus one round trip, with slack.
        Assert.True(healed <= RecoveryBound, $"used again only {healed.TotalMilliseconds:0} ms after the heal (bound {RecoveryBound.TotalMilliseconds:0} ms)");
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Firewall_drop_while_traffic_flows(bool async)
    {
        NetworkNamespaceRedis.SkipIfUnavailable();

        await using var redis = await NetworkNamespaceRedis.StartAsync(cancellationToken: Lab.Ct);
        using var lab = new LabCache(redis.ConnectionString);

        // The kernel drops every packet, also the SYN of a new connection: connects hang too.
        var report = await Outage.RunAsync(lab, async,
            new Fault("netns-drop", redis.DropTrafficAsync, redis.RestoreTrafficAsync),
            new OutageOptions { CountCommands = () => CacheCommands.ReadsAndWritesAsync(redis.Redis) });

        report.AssertSurvived(RecoveryBound);
        Assert.True(report.FirstHitAfterHeal - report.HealAt <= RecoveryBound, $"first hit too late: {report}");
    }
}
