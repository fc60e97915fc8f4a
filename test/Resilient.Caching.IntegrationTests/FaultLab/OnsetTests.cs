using System.Globalization;
using Resilient.Caching.IntegrationTests.Infrastructure;
using Xunit;

namespace Resilient.Caching.IntegrationTests.FaultLab;

/// <summary>
/// The onset of an outage under concurrency: 64 asynchronous callers are mid-call when the path to Redis goes
/// silent. No call may outlive the operation timeout, and when the window opens every caller still waiting on Redis
/// is released at once with its fallback: the onset costs each caller at most what the first failure cost.
/// Run with the library's defaults (5 s timeouts, 30 s window) and with 1 s settings.
/// </summary>
public sealed class OnsetTests
{
    // What the bound allows on top of the operation timeout (100 ms), plus scheduling noise on a loaded 2-core machine.
    private static readonly TimeSpan Allowance = TimeSpan.FromMilliseconds(100) + TimeSpan.FromMilliseconds(500);

    // A caller still waiting when the window opens is released within this.
    private static readonly TimeSpan ReleaseBound = TimeSpan.FromMilliseconds(400);

    [Theory]
    [InlineData("defaults")]
    [InlineData("1s")]
    public async Task Sixty_four_async_callers_at_the_onset_of_a_blackhole(string settings)
    {
        await using var server = await RedisServer.StartNewAsync(cancellationToken: Lab.Ct);
        await using var proxy = new FaultProxy(server.Host, server.Port);
        var operationTimeout = settings == "defaults" ? TimeSpan.FromSeconds(5) : TimeSpan.FromSeconds(1);
        using var lab = new LabCache(proxy.ConnectionString, o =>
        {
            o.OperationTimeout = operationTimeout;
            o.ConnectTimeout = operationTimeout;
            o.UnavailableWindow = settings == "defaults" ? TimeSpan.FromSeconds(30) : TimeSpan.FromSeconds(2);
            if (settings == "defaults")
            {
                o.TcpKeepAlive.Idle = TimeSpan.FromSeconds(60);
                o.TcpKeepAlive.Interval = TimeSpan.FromSeconds(10);
                o.TcpKeepAlive.Count = 9;
            }
        });
        await lab.WarmUpAsync();

        await using var traffic = Traffic.Start(lab.Cache, async: true, workers: 64, pause: TimeSpan.FromMilliseconds(5), limit: TimeSpan.FromSeconds(40));
        Assert.NotNull(await traffic.WaitForAsync(s => s.Outcome == CallOutcome.Hit, TimeSpan.Zero, TimeSpan.FromSeconds(10)));
        await Lab.EventuallyAsync(() => traffic.Samples.Count > 500, TimeSpan.FromSeconds(5));

        var faultAt = traffic.Now;
        proxy.SetMode(FaultMode.Blackhole);
        await lab.WaitForAvailabilityAsync(false, operationTimeout + Lab.Slack);
        var openedAt = traffic.Now;

        // Long enough for any call that would outlive the window's opening to show it.
        await Task.Delay(operationTimeout + TimeSpan.FromSeconds(1), Lab.Ct);
        await traffic.StopAsync();

        var onset = traffic.Samples.Where(s => s.End >= faultAt).ToList();
        var slowest = onset.Max(s => s.Elapsed);
        var blocked = TimeSpan.FromTicks(onset.Where(s => s.Elapsed > TimeSpan.FromMilliseconds(50)).Sum(s => s.Elapsed.Ticks));
        var inFlightAtOpen = onset.Where(s => s.At < openedAt).ToList();
        var latestRelease = inFlightAtOpen.Count == 0 ? TimeSpan.Zero : inFlightAtOpen.Max(s => s.End) - openedAt;
        var errors = onset.Count(s => s.Outcome == CallOutcome.Error);
        var summary = string.Create(CultureInfo.InvariantCulture,
            $"{settings}: window opened {(openedAt - faultAt).TotalMilliseconds:0} ms after the fault; {onset.Count} calls; slowest {slowest.TotalMilliseconds:0} ms; " +
            $"caller-time blocked {blocked.TotalSeconds:0.0} s; last in-flight call released {latestRelease.TotalMilliseconds:0} ms after the window opened; {errors} errors");
        Lab.Report(summary);
        TestContext.Current.SendDiagnosticMessage(summary);

        Assert.Equal(0, errors);
        Assert.True(slowest <= operationTimeout + Allowance, $"a call took {slowest.TotalMilliseconds:0} ms: {summary}\n{lab.DescribeLogs()}");
        Assert.True(latestRelease <= ReleaseBound, $"callers waited on after the window opened: {summary}\n{lab.DescribeLogs()}");

        // 64 callers, each paying at most what the first failure cost.
        Assert.True(blocked <= 64 * (operationTimeout + Allowance), summary);
    }
}
