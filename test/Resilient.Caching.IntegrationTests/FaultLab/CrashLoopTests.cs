using System.Diagnostics;
using System.Globalization;
using System.Text;
using Resilient.Caching.IntegrationTests.Infrastructure;
using Xunit;

namespace Resilient.Caching.IntegrationTests.FaultLab;

/// <summary>
/// A crash-looping Redis: killed (SIGKILL) and started again on the same port every 2.5 s or so, five times, under
/// callers writing and reading (2 async, 2 sync), with the library's defaults (5 s timeouts, 30 s window). What it
/// costs the callers is measured and printed (time spent in calls longer than 50 ms, windows opened, first hit after
/// each restart), so that versions can be compared; what is asserted is that it stays bounded: no call longer than
/// the operation timeout and half a second, none throws, and Redis is used again soon after the loop ends.
/// </summary>
public sealed class CrashLoopTests
{
    private const int Cycles = 5;

    /// <summary>How long Redis stays down in each cycle (the fault).</summary>
    private static readonly TimeSpan Down = TimeSpan.FromSeconds(1);

    /// <summary>How long Redis runs before the next kill (the fault).</summary>
    private static readonly TimeSpan Up = TimeSpan.FromSeconds(1.5);

    /// <summary>A call above this counts as blocking its caller.</summary>
    private static readonly TimeSpan Blocking = TimeSpan.FromMilliseconds(50);

    /// <summary>From the last restart to a hit, once the loop is over (as for a single short restart).</summary>
    private static readonly TimeSpan UsedAgainBound = TimeSpan.FromSeconds(3);

    [Fact]
    public async Task Callers_of_a_crash_looping_redis_are_blocked_a_bounded_time()
    {
        await using var server = await RedisServer.StartNewAsync(cancellationToken: Lab.Ct);
        await using var lab = new LabCache(server.ConnectionString, Lab.UseDefaults);
        await lab.StartAsync();
        await lab.WaitForConnectionAsync();
        await lab.WarmUpAsync();

        // One clock for both traffics: each sample's start is moved onto it.
        var clock = Stopwatch.StartNew();
        var limit = TimeSpan.FromSeconds(50);
        await using var asyncTraffic = Traffic.Start(lab.Cache, async: true, workers: 2, limit: limit, prefix: "crash:a");
        var asyncOffset = clock.Elapsed - asyncTraffic.Now;
        await using var syncTraffic = Traffic.Start(lab.Cache, async: false, workers: 2, limit: limit, prefix: "crash:s");
        var syncOffset = clock.Elapsed - syncTraffic.Now;
        Assert.NotNull(await asyncTraffic.WaitForAsync(s => s.Outcome == CallOutcome.Hit, TimeSpan.Zero, TimeSpan.FromSeconds(5)));
        Assert.NotNull(await syncTraffic.WaitForAsync(s => s.Outcome == CallOutcome.Hit, TimeSpan.Zero, TimeSpan.FromSeconds(5)));

        var loopOn = clock.Elapsed;
        var restarts = new List<(TimeSpan Killed, TimeSpan Back)>();
        for (var cycle = 0; cycle < Cycles; cycle++)
        {
            var killed = clock.Elapsed;
            server.Kill();
            await Task.Delay(Down, Lab.Ct); // The fault: down for a second,
            await server.RestartAsync(Lab.Ct);
            restarts.Add((killed, clock.Elapsed));
            if (cycle < Cycles - 1)
            {
                await Task.Delay(Up, Lab.Ct); // then up for a second and a half.
            }
        }

        // The loop is over: Redis stays up. The callers' next hit says when the cache is used again.
        var lastBack = restarts[^1].Back;
        Sample? Hit(Traffic traffic, TimeSpan offset) => traffic.Samples.FirstOrDefault(s => s.Outcome == CallOutcome.Hit && s.At + offset >= lastBack);
        await Lab.EventuallyAsync(() => Hit(asyncTraffic, asyncOffset) is not null && Hit(syncTraffic, syncOffset) is not null, TimeSpan.FromSeconds(10));
        await Task.Delay(TimeSpan.FromMilliseconds(500), Lab.Ct); // A little more traffic, so that a relapse shows.
        await asyncTraffic.StopAsync();
        await syncTraffic.StopAsync();

        var samples = asyncTraffic.Samples.Select(s => s with { At = s.At + asyncOffset })
            .Concat(syncTraffic.Samples.Select(s => s with { At = s.At + syncOffset, Worker = s.Worker + 2 }))
            .OrderBy(s => s.At).ToList();
        var loop = samples.Where(s => s.End >= loopOn).ToList();
        var blocking = loop.Where(s => s.Elapsed > Blocking).ToList();
        var blocked = TimeSpan.FromTicks(blocking.Sum(s => s.Elapsed.Ticks));
        var slowest = loop.Select(s => s.Elapsed).DefaultIfEmpty().Max();
        var errors = loop.Where(s => s.Error is not null).ToList();
        var reads = loop.Where(s => s.Operation == "Get").ToList();
        var usedAgain = samples.Where(s => s.Outcome == CallOutcome.Hit && s.At >= lastBack).Select(s => (TimeSpan?)(s.End - lastBack)).Min();

        var text = new StringBuilder();
        text.Append(CultureInfo.InvariantCulture,
            $"crash loop ({Cycles} cycles, down {Down.TotalSeconds:0.#} s, up {Up.TotalSeconds:0.#} s): {loop.Count} calls ({reads.Count(s => s.Outcome == CallOutcome.Hit)} of {reads.Count} reads hit); ");
        text.Append(CultureInfo.InvariantCulture,
            $"callers blocked {blocked.TotalSeconds:0.00} s in all ({blocking.Count} calls over {Blocking.TotalMilliseconds:0} ms; sync {Sum(blocking.Where(s => s.Worker >= 2)):0.00} s, async {Sum(blocking.Where(s => s.Worker < 2)):0.00} s), slowest {slowest.TotalMilliseconds:0} ms, {errors.Count} threw; ");
        text.Append(CultureInfo.InvariantCulture,
            $"windows opened {lab.Availability.Outages} ({lab.DescribeOutageEvents()}); ");
        text.Append("first hit after each restart: ").AppendJoin(", ", restarts.Select((r, i) =>
        {
            var end = i + 1 < restarts.Count ? restarts[i + 1].Killed : TimeSpan.MaxValue;
            var hit = samples.FirstOrDefault(s => s.Outcome == CallOutcome.Hit && s.At >= r.Back && s.At < end);
            return hit is null ? "none" : string.Create(CultureInfo.InvariantCulture, $"{(hit.End - r.Back).TotalMilliseconds:0} ms");
        }));
        text.Append(CultureInfo.InvariantCulture, $"; used again {(usedAgain is { } u ? $"{u.TotalMilliseconds:0} ms" : "never")} after the last restart");
        var summary = text.ToString();
        Lab.Report(summary);
        TestContext.Current.SendDiagnosticMessage(summary);
        Lab.Report("calls over 50 ms:\n" + string.Join('\n', blocking.Select(s => s.ToString())));
        Lab.Report(lab.DescribeLogs());

        Assert.True(errors.Count == 0, $"{errors.Count} calls threw, first: {errors.FirstOrDefault()}\n{summary}");
        Assert.True(slowest <= Lab.DefaultsCallBound, $"a call took {slowest.TotalMilliseconds:0} ms: {summary}\n{lab.DescribeLogs()}");

        // Each kill costs the callers together at most one operation timeout: a build where every caller waits one
        // out at each kill (4 callers, 5 kills: 100 s) is far beyond.
        var blockedBound = Cycles * Lab.DefaultsCallBound;
        Assert.True(blocked <= blockedBound, $"callers blocked {blocked.TotalSeconds:0.0} s (at most {blockedBound.TotalSeconds:0} s): {summary}");
        Assert.True(usedAgain <= UsedAgainBound, $"not used again within {UsedAgainBound.TotalSeconds:0} s of the last restart: {summary}\n{lab.DescribeLogs()}");
    }

    private static double Sum(IEnumerable<Sample> samples) => samples.Sum(s => s.Elapsed.TotalSeconds);
}
