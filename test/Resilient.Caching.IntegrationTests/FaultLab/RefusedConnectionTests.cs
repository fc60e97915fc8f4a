using System.Diagnostics;
using System.Globalization;
using Resilient.Caching.IntegrationTests.Infrastructure;
using Xunit;

namespace Resilient.Caching.IntegrationTests.FaultLab;

/// <summary>
/// Nothing listens on Redis's port: the connection is refused, which is known at once. With the library's defaults
/// (5 s timeouts, 30 s window), no caller waits out the operation timeout for a connection that was refused, and once
/// redis-server accepts connections on that port the connection made again in the background (every half second)
/// starts the check at once: Redis is used within about a second, not after the window. At a cold start, and after a
/// window opened because Redis was killed.
/// </summary>
public sealed class RefusedConnectionTests
{
    /// <summary>A call answered "at once": well under the 5 s operation timeout, with room for a loaded machine.</summary>
    private static readonly TimeSpan AtOnce = TimeSpan.FromSeconds(1);

    /// <summary>From redis-server answering PING to a read that hits (about a second expected: a reconnect every half second, then the check).</summary>
    private static readonly TimeSpan UsedBound = TimeSpan.FromSeconds(2);

    /// <summary>How long to keep trying for that hit, so that a build missing the bound still reports when it hit.</summary>
    private static readonly TimeSpan UsedWait = TimeSpan.FromSeconds(10);

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Cold_start_with_nothing_listening_waits_for_nothing_and_uses_redis_once_it_starts(bool async)
    {
        var port = Lab.ClosedPort();
        await using var lab = new LabCache($"127.0.0.1:{port}", Lab.UseDefaults);
        await lab.StartAsync();

        // The first call comes while the first connect (started by the host) is under way or just refused.
        var first = Stopwatch.StartNew();
        Assert.Null(await lab.Cache.GetAsync("cold:k", async));
        first.Stop();
        var next = Stopwatch.StartNew();
        await lab.Cache.SetAsync("cold:k", Lab.Bytes("v"), async);
        Assert.Null(await lab.Cache.GetAsync("cold:k", async));
        next.Stop();

        var launch = Stopwatch.StartNew();
        await using var server = await RedisServer.StartNewAsync(new RedisServerOptions { Port = port }, Lab.Ct);
        var launched = launch.Elapsed;
        var upAt = DateTimeOffset.UtcNow;
        var used = await lab.TryUsedAgainAsync(async, UsedWait);

        var summary = string.Create(CultureInfo.InvariantCulture,
            $"cold start ({(async ? "async" : "sync")}): first call {first.Elapsed.TotalMilliseconds:0} ms, then a set and a get {next.Elapsed.TotalMilliseconds:0} ms; " +
            $"redis-server answered PING {launched.TotalMilliseconds:0} ms after its launch (at {upAt:HH:mm:ss.fff}); first hit {Ms(used)} after that " +
            $"({Ms(launched + used)} after the launch); windows opened {lab.Availability.Outages} ({lab.DescribeOutageEvents()})");
        Lab.Report(summary);
        TestContext.Current.SendDiagnosticMessage(summary);
        Lab.Report(lab.DescribeLogs());

        Assert.True(first.Elapsed < AtOnce, $"the first call waited: {summary}\n{lab.DescribeLogs()}");
        Assert.True(next.Elapsed < AtOnce, $"the next calls waited: {summary}\n{lab.DescribeLogs()}");
        Assert.True(used <= UsedBound, $"Redis was used too late: {summary}\n{lab.DescribeLogs()}");
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Redis_killed_then_started_again_is_used_within_a_second_of_being_up(bool async)
    {
        await using var server = await RedisServer.StartNewAsync(cancellationToken: Lab.Ct);
        await using var lab = new LabCache(server.ConnectionString, Lab.UseDefaults);
        await lab.StartAsync();
        await lab.WaitForConnectionAsync();
        await lab.WarmUpAsync();

        var killedAt = DateTimeOffset.UtcNow;
        server.Kill();
        var slowest = TimeSpan.Zero;
        var calls = 0;
        var opened = await Lab.UntilAsync("a window opened after the kill", TimeSpan.FromSeconds(10), async () =>
        {
            var call = Stopwatch.StartNew();
            calls++;
            Assert.Null(await lab.Cache.GetAsync("lab:warm-up", async));
            slowest = call.Elapsed > slowest ? call.Elapsed : slowest;
            return lab.Availability.IsOutage;
        });

        await server.RestartAsync(Lab.Ct);
        var upAt = DateTimeOffset.UtcNow;
        var used = await lab.TryUsedAgainAsync(async, UsedWait);

        var summary = string.Create(CultureInfo.InvariantCulture,
            $"after a window ({(async ? "async" : "sync")}): killed at {killedAt:HH:mm:ss.fff}, window open {opened.TotalMilliseconds:0} ms later ({calls} calls, slowest {slowest.TotalMilliseconds:0} ms); " +
            $"first hit {Ms(used)} after redis-server answered PING again (at {upAt:HH:mm:ss.fff}); windows opened {lab.Availability.Outages} ({lab.DescribeOutageEvents()})");
        Lab.Report(summary);
        TestContext.Current.SendDiagnosticMessage(summary);
        Lab.Report(lab.DescribeLogs());

        Assert.True(slowest < AtOnce, $"a call waited for the refused connection: {summary}\n{lab.DescribeLogs()}");
        Assert.True(used <= UsedBound, $"Redis was used too late: {summary}\n{lab.DescribeLogs()}");
    }

    private static string Ms(TimeSpan? elapsed) =>
        elapsed is { } e ? string.Create(CultureInfo.InvariantCulture, $"{e.TotalMilliseconds:0} ms") : $"never (within {UsedWait.TotalSeconds:0} s)";
}
