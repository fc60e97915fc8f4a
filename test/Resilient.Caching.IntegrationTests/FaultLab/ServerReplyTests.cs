using System.Diagnostics;
using System.Globalization;
using Microsoft.Extensions.Caching.Distributed;
using Microsoft.Extensions.Logging;
using Resilient.Caching.IntegrationTests.Infrastructure;
using Xunit;

namespace Resilient.Caching.IntegrationTests.FaultLab;

/// <summary>
/// Scenario 6: Redis is up and answers, but with an error that means "not now": OOM, BUSY, READONLY, NOAUTH /
/// WRONGPASS, LOADING. Swallowed like a transport failure (the window opens, nothing else is sent), without
/// throwing away the healthy connection.
/// </summary>
public sealed class ServerReplyTests
{
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Out_of_memory_refuses_writes(bool async)
    {
        await using var server = await RedisServer.StartNewAsync(new RedisServerOptions { MaxMemoryPolicy = "noeviction" }, Lab.Ct);
        using var lab = new LabCache(server.ConnectionString);

        // Reads still work under OOM (a read probe would close the window at once), so the callers only write.
        var report = await Outage.RunAsync(lab, async,
            new Fault(
                "oom",
                async () =>
                {
                    Assert.StartsWith("+OK", await server.ExecuteAsync("DEBUG", "POPULATE", "20000", "lab-filler", "64"), StringComparison.Ordinal);
                    Assert.StartsWith("+OK", await server.ExecuteAsync("CONFIG", "SET", "maxmemory", "1mb"), StringComparison.Ordinal);
                    Assert.StartsWith("-OOM", await server.ExecuteAsync("SET", "lab:oom-check", "v"), StringComparison.Ordinal);
                },
                async () => Assert.StartsWith("+OK", await server.ExecuteAsync("CONFIG", "SET", "maxmemory", "0"), StringComparison.Ordinal)),
            new OutageOptions { WritesOnly = true, CountCommands = () => CacheCommands.ReadsAndWritesAsync(server) });

        report.AssertSurvived();
        Assert.Contains("OOM", report.Logs, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Busy_running_a_script(bool async)
    {
        await using var server = await RedisServer.StartNewAsync(cancellationToken: Lab.Ct);
        Assert.StartsWith("+OK", await server.ExecuteAsync("CONFIG", "SET", "busy-reply-threshold", "100"), StringComparison.Ordinal);
        using var lab = new LabCache(server.ConnectionString);
        RespConnection? blocker = null;
        try
        {
            var report = await Outage.RunAsync(lab, async,
                new Fault(
                    "busy",
                    async () =>
                    {
                        blocker = await RespConnection.ConnectAsync(server.Host, server.Port, TimeSpan.FromSeconds(5), Lab.Ct);
                        await blocker.SendAsync(["EVAL", "while true do end", "0"], Lab.Ct);
                        Assert.True(await Lab.EventuallyAsync(async () => (await PingAsync(server)).StartsWith("-BUSY", StringComparison.Ordinal), TimeSpan.FromSeconds(5)), "Redis never became busy");
                    },
                    async () =>
                    {
                        Assert.StartsWith("+OK", await server.ExecuteAsync("SCRIPT", "KILL"), StringComparison.Ordinal);
                        Assert.StartsWith("-", await blocker!.ReadReplyAsync(TimeSpan.FromSeconds(5), Lab.Ct), StringComparison.Ordinal);
                    }),
                // The blocking EVAL is the fixture's, not the cache's: it is counted once it has been killed.
                new OutageOptions { CountCommands = async () => await CacheCommands.ReadsAndWritesAsync(server) - (blocker is null ? 0 : 1) });

            report.AssertSurvived();
            Assert.Contains("BUSY", report.Logs, StringComparison.Ordinal);
        }
        finally
        {
            await KillScriptAsync(server);
            blocker?.Dispose();
        }
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Primary_demoted_to_a_replica_answers_READONLY(bool async)
    {
        await using var primary = await RedisServer.StartNewAsync(cancellationToken: Lab.Ct);
        await using var server = await RedisServer.StartNewAsync(cancellationToken: Lab.Ct);
        using var lab = new LabCache(server.ConnectionString);

        // The server the cache talks to becomes a replica under it (a failover seen from the old primary): writes
        // are answered READONLY, reads still work, so the callers only write.
        var port = primary.Port.ToString(CultureInfo.InvariantCulture);
        var report = await Outage.RunAsync(lab, async,
            new Fault(
                "readonly",
                async () =>
                {
                    Assert.StartsWith("+OK", await server.ExecuteAsync("REPLICAOF", primary.Host, port), StringComparison.Ordinal);
                    Assert.StartsWith("-READONLY", await server.ExecuteAsync("SET", "lab:readonly-check", "v"), StringComparison.Ordinal);
                },
                async () => Assert.StartsWith("+OK", await server.ExecuteAsync("REPLICAOF", "NO", "ONE"), StringComparison.Ordinal)),
            new OutageOptions { WritesOnly = true, CountCommands = () => CacheCommands.ReadsAndWritesAsync(server) });

        report.AssertSurvived();
        Assert.Contains("READONLY", report.Logs, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Configured_against_a_replica_writes_are_skipped(bool async)
    {
        await using var primary = await RedisServer.StartNewAsync(cancellationToken: Lab.Ct);
        await using var replica = await RedisServer.StartNewAsync(new RedisServerOptions { ReplicaOfHost = primary.Host, ReplicaOfPort = primary.Port }, Lab.Ct);
        using var lab = new LabCache(replica.ConnectionString);

        // StackExchange.Redis knows the server is a replica and refuses the write itself (it never sends it, so no
        // READONLY reply): a connection error for the cache, swallowed.
        var writes = new List<TimeSpan>();
        for (var i = 0; i < 20; i++)
        {
            var call = Stopwatch.StartNew();
            if (async)
            {
                await lab.Cache.SetAsync("lab:k", Lab.Bytes("v"), new DistributedCacheEntryOptions(), Lab.Ct);
            }
            else
            {
                lab.Cache.Set("lab:k", Lab.Bytes("v"), new DistributedCacheEntryOptions());
            }

            writes.Add(call.Elapsed);
        }

        Lab.Report($"writes to a replica: max {writes.Max().TotalMilliseconds:0} ms; {lab.DescribeLogs()}");
        Assert.All(writes, w => Assert.True(w <= Lab.CallBound, $"a write took {w.TotalMilliseconds:0} ms"));

        // The refusal is checked by a probe write, refused too: the window opens.
        await lab.WaitForAvailabilityAsync(false, Lab.CallBound);
        Assert.True(await Lab.EventuallyAsync(() => lab.LogCount(Log.IdWindowOpened, LogLevel.Warning) == 1, Lab.Slack), lab.DescribeLogs());
        Assert.Equal(0, await CacheCommands.CountAsync(replica));
    }

    [Theory]
    [InlineData("no password", false)]
    [InlineData("no password", true)]
    [InlineData("wrong password", false)]
    [InlineData("wrong password", true)]
    public async Task Credentials_rejected_are_logged_at_Error_and_swallowed(string credentials, bool async)
    {
        await using var server = await RedisServer.StartNewAsync(new RedisServerOptions { RequirePass = "right" }, Lab.Ct);
        var clientPassword = credentials == "no password" ? null : "wrong";
        // The reason (NOAUTH) reaches the log when the rejected handshake ends while the probe still waits for the
        // connection: a connect attempt shorter than the operation timeout makes that so even on a loaded machine.
        using var lab = new LabCache(
            $"{server.Host}:{server.Port}{(clientPassword is null ? string.Empty : ",password=" + clientPassword)}",
            o => o.ConnectTimeout = TimeSpan.FromMilliseconds(250));

        // Misconfigured from the start: traffic runs for two windows and a half, and on until the rejection has been
        // logged at Error. A probe learns the reason only when a rejected handshake ends within its wait; a loaded
        // machine can take longer than that over a fresh connect, and the window is then logged as an outage (a
        // Warning) until a probe does. For ten windows at most.
        var clock = Stopwatch.StartNew();
        await using (var traffic = Traffic.Start(lab.Cache, async))
        {
            await Task.Delay((Lab.Window * 2.5) + Lab.OperationTimeout, Lab.Ct); // Part of the scenario, not a synchronisation.
            await Lab.EventuallyAsync(() => lab.LogCount(Log.IdAuthenticationFailed, LogLevel.Error) >= 1, Lab.Window * 7.5);
            await traffic.StopAsync();
            var elapsed = clock.Elapsed;
            var calls = traffic.Samples;
            var windows = lab.LogCount(Log.IdAuthenticationFailed, LogLevel.Error);
            var windowsElapsed = (int)Math.Ceiling(elapsed / Lab.Window);
            Lab.Report($"{credentials} ({(async ? "async" : "sync")}): {calls.Count} calls in {elapsed.TotalSeconds:0.0} s, max {calls.Max(s => s.Elapsed).TotalMilliseconds:0} ms, " +
                $"{calls.Count(s => s.Elapsed > Lab.SlowCall)} slow, {windows} Error lines\n{lab.DescribeLogs()}");

            Assert.DoesNotContain(calls, s => s.Outcome == CallOutcome.Error);
            Assert.True(calls.Max(s => s.Elapsed) <= Lab.CallBound);
            Assert.True(windows >= 1, $"the rejected credentials were not logged at Error within {elapsed.TotalSeconds:0.0} s\n{lab.DescribeLogs()}");
            Assert.True(windows <= windowsElapsed + 1, $"more than one Error line per window ({windows} in {elapsed.TotalSeconds:0.0} s)\n{lab.DescribeLogs()}");
            Assert.True(calls.Count(s => s.Elapsed > Lab.SlowCall) <= windows + 2, "more calls waited than one per window");
            Assert.Contains("NOAUTH", lab.DescribeLogs(), StringComparison.Ordinal);
            Assert.Equal(0, await CacheCommands.CountAsync(server));
        }

        // The password is fixed on the server side (rotated to what the client sends): the cache comes back.
        Assert.StartsWith("+OK", await server.ExecuteAsync("CONFIG", "SET", "requirepass", clientPassword ?? string.Empty), StringComparison.Ordinal);
        var recovered = await lab.RecoverAsync(async, within: TimeSpan.FromSeconds(20));
        Lab.Report($"{credentials}: used again {recovered.TotalMilliseconds:0} ms after the password was fixed");
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Loading_the_dataset(bool async)
    {
        await using var server = await RedisServer.StartNewAsync(cancellationToken: Lab.Ct);

        // DEBUG RELOAD saves and loads the dataset again; with a load delay per key and frequent event processing
        // the load takes about three seconds, during which every client gets LOADING.
        Assert.StartsWith("+OK", await server.ExecuteAsync("DEBUG", "POPULATE", "3000", "lab-filler", "100"), StringComparison.Ordinal);
        Assert.StartsWith("+OK", await server.ExecuteAsync("CONFIG", "SET", "key-load-delay", "1000"), StringComparison.Ordinal);
        Assert.StartsWith("+OK", await server.ExecuteAsync("CONFIG", "SET", "loading-process-events-interval-bytes", "1024"), StringComparison.Ordinal);
        using var lab = new LabCache(server.ConnectionString);
        using var reloader = await RespConnection.ConnectAsync(server.Host, server.Port, TimeSpan.FromSeconds(5), Lab.Ct);

        var report = await Outage.RunAsync(lab, async,
            new Fault(
                "loading",
                async () =>
                {
                    await reloader.SendAsync(["DEBUG", "RELOAD"], Lab.Ct);
                    Assert.True(await Lab.EventuallyAsync(async () => (await PingAsync(server)).StartsWith("-LOADING", StringComparison.Ordinal), TimeSpan.FromSeconds(5)), "Redis never reported LOADING");
                },
                async () => Assert.StartsWith("+OK", await reloader.ReadReplyAsync(TimeSpan.FromSeconds(30), Lab.Ct), StringComparison.Ordinal)),
            new OutageOptions { FaultFor = TimeSpan.Zero, CountCommands = () => CacheCommands.ReadsAndWritesAsync(server) });

        report.AssertSurvived();
        Assert.Contains("LOADING", report.Logs, StringComparison.Ordinal);
    }

    private static async Task<string> PingAsync(RedisServer server)
    {
        using var connection = await RespConnection.ConnectAsync(server.Host, server.Port, TimeSpan.FromSeconds(2), Lab.Ct);
        return await connection.ExecuteAsync(["PING"], TimeSpan.FromSeconds(2), Lab.Ct);
    }

    private static async Task KillScriptAsync(RedisServer server)
    {
        try
        {
            await server.ExecuteAsync(TimeSpan.FromSeconds(2), "SCRIPT", "KILL");
        }
        catch (Exception exception) when (exception is IOException or TimeoutException or System.Net.Sockets.SocketException)
        {
            // The server is already gone or was never busy.
        }
    }
}
