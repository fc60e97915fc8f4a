using System.Globalization;
using Microsoft.Extensions.Logging;
using Resilient.Caching.IntegrationTests.Infrastructure;
using Xunit;

namespace Resilient.Caching.IntegrationTests.FaultLab;

/// <summary>
/// A blip is not an outage: connections reset on a healthy Redis (CLIENT KILL, a load balancer recycling them) are
/// checked on a fresh connection at once, and the cache goes on using Redis within a round trip of the reconnect,
/// with no error for any caller, no Warning and no unavailable window. Run with the default 30 s window, where a
/// window opened by mistake would switch the cache off for half a minute.
/// </summary>
public sealed class BlipTests
{
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Client_kill_under_load_is_a_blip(bool async)
    {
        await using var server = await RedisServer.StartNewAsync(cancellationToken: Lab.Ct);
        using var lab = new LabCache(server.ConnectionString, o => o.UnavailableWindow = TimeSpan.FromSeconds(30));
        await lab.WarmUpAsync();
        await using var traffic = Traffic.Start(lab.Cache, async, workers: 4, pause: TimeSpan.FromMilliseconds(2), limit: TimeSpan.FromSeconds(30));
        Assert.NotNull(await traffic.WaitForAsync(s => s.Outcome == CallOutcome.Hit, TimeSpan.Zero, TimeSpan.FromSeconds(10)));

        var mark = lab.LogMark();
        var killedAt = traffic.Now;
        var killed = await server.ExecuteAsync("CLIENT", "KILL", "TYPE", "normal");
        Assert.True(int.Parse(killed.Trim().TrimStart(':'), CultureInfo.InvariantCulture) > 0, $"no connection was killed: {killed}");

        // Hits again soon after the kill, on the same (never opened) window.
        var firstHit = await traffic.WaitForAsync(s => s.Outcome == CallOutcome.Hit && s.At > killedAt, killedAt, TimeSpan.FromSeconds(10));
        await Task.Delay(500, Lab.Ct); // More traffic after the blip, to see that it stays in use: part of the scenario.
        await traffic.StopAsync();

        var after = traffic.Samples.Where(s => s.At >= killedAt).ToList();
        var errors = after.Count(s => s.Outcome == CallOutcome.Error);
        var gap = firstHit is null ? TimeSpan.MaxValue : firstHit.End - killedAt;
        var summary = string.Create(CultureInfo.InvariantCulture,
            $"CLIENT KILL ({(async ? "async" : "sync")}): {after.Count} calls after the kill, {errors} errors, first hit {gap.TotalMilliseconds:0} ms after the kill, " +
            $"max call {after.Max(s => s.Elapsed).TotalMilliseconds:0} ms, outages {lab.Availability.Outages}");
        Lab.Report(summary + "\n" + lab.DescribeLogs());

        Assert.Equal(0, errors);
        Assert.NotNull(firstHit);
        Assert.True(gap < TimeSpan.FromSeconds(1), summary);
        Assert.Equal(0, lab.Availability.Outages);
        Assert.True(lab.Availability.IsAvailable, summary);
        Assert.DoesNotContain(lab.Logs.GetSnapshot().Skip(mark), r => r.Level >= LogLevel.Warning);
        // Once past the blip (keys read while it was checked are deleted with it, so each caller misses once or twice
        // more), reads hit again as before.
        var steady = after.Where(s => s.At > firstHit!.End + TimeSpan.FromMilliseconds(200) && s.Outcome is CallOutcome.Hit or CallOutcome.Miss).ToList();
        Assert.True(steady.Count > 20 && steady.Count(s => s.Outcome == CallOutcome.Hit) >= steady.Count * 0.9,
            $"the cache did not stay in use after the blip ({steady.Count(s => s.Outcome == CallOutcome.Hit)} hits of {steady.Count} reads): {summary}");
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Redis_killed_and_not_restarted_opens_the_window(bool async)
    {
        await using var server = await RedisServer.StartNewAsync(cancellationToken: Lab.Ct);
        using var lab = new LabCache(server.ConnectionString);
        await lab.WarmUpAsync();

        server.Kill();
        Assert.Null(await lab.Cache.GetAsync("lab:warm-up", async));

        // The check on a fresh connection is refused too: a confirmed outage, one Warning.
        await lab.WaitForAvailabilityAsync(false, Lab.CallBound);
        Assert.Equal(1, lab.Availability.Outages);
        Assert.True(await Lab.EventuallyAsync(() => lab.LogCount(Log.IdWindowOpened, LogLevel.Warning) == 1, Lab.Slack), lab.DescribeLogs());
    }
}
