using System.Diagnostics;
using System.Net.Sockets;
using Xunit;

namespace Resilient.Caching.IntegrationTests.Infrastructure;

// Self-tests of the fault-injection fixtures: if a fixture silently stopped injecting its fault, the resilience
// tests built on it would pass for the wrong reason. Three classes so xunit runs them in parallel.

/// <summary>Helpers shared by the fixture self-tests.</summary>
internal static class SelfTest
{
    public static readonly TimeSpan Answer = TimeSpan.FromSeconds(5);

    public static CancellationToken Token => TestContext.Current.CancellationToken;

    public static async Task<string> PingAsync(string host, int port, TimeSpan? readTimeout = null)
    {
        using var connection = await RespConnection.ConnectAsync(host, port, Answer, Token);
        return await connection.ExecuteAsync(["PING"], readTimeout ?? Answer, Token);
    }

    public static async Task<RespConnection> ConnectAndPingAsync(string host, int port)
    {
        var connection = await RespConnection.ConnectAsync(host, port, Answer, Token);
        Assert.Equal("+PONG\r\n", await connection.ExecuteAsync(["PING"], Answer, Token));
        return connection;
    }

    /// <summary>True if nothing at all (no data, FIN or RST) has arrived on the socket: it is open but silent.</summary>
    public static bool IsSilentButOpen(Socket socket) => !socket.Poll(0, SelectMode.SelectRead);
}

public sealed class RedisServerFixtureSelfTests
{
    [Fact]
    public async Task Started_server_answers_ping_on_its_connection_string()
    {
        await using var server = await RedisServer.StartNewAsync(cancellationToken: SelfTest.Token);

        Assert.Equal($"127.0.0.1:{server.Port}", server.ConnectionString);
        Assert.Equal("+PONG\r\n", await SelfTest.PingAsync(server.Host, server.Port));
        Assert.NotNull(server.ProcessId);
    }

    [Fact]
    public async Task Kill_refuses_connections_and_restart_comes_back_on_the_same_port()
    {
        await using var server = await RedisServer.StartNewAsync(cancellationToken: SelfTest.Token);
        var port = server.Port;
        Assert.Equal("+OK\r\n", await server.ExecuteAsync("SET", "k", "v"));

        server.Kill();

        Assert.Null(server.ProcessId);
        var refused = await Assert.ThrowsAsync<SocketException>(() => SelfTest.PingAsync(server.Host, port));
        Assert.Equal(SocketError.ConnectionRefused, refused.SocketErrorCode);

        await server.RestartAsync(SelfTest.Token);

        Assert.Equal(port, server.Port);
        Assert.Equal("+PONG\r\n", await SelfTest.PingAsync(server.Host, port));
        Assert.Equal("$-1\r\n", await server.ExecuteAsync("GET", "k")); // No persistence: a restart loses data.
    }

    [Fact]
    public async Task AppendOnly_keeps_the_data_across_kill_and_restart()
    {
        await using var server = await RedisServer.StartNewAsync(new RedisServerOptions { AppendOnly = true }, SelfTest.Token);
        Assert.Equal("+OK\r\n", await server.ExecuteAsync("SET", "k", "v"));
        Assert.Equal(":1\r\n", await server.ExecuteAsync("HSET", "h", "data", "value"));

        server.Kill();
        await server.RestartAsync(SelfTest.Token);

        Assert.Equal("$1\r\nv\r\n", await server.ExecuteAsync("GET", "k"));
        Assert.Equal("$5\r\nvalue\r\n", await server.ExecuteAsync("HGET", "h", "data"));
    }

    [Fact]
    public async Task Pause_stops_replies_and_resume_answers_again()
    {
        await using var server = await RedisServer.StartNewAsync(cancellationToken: SelfTest.Token);
        using var connection = await SelfTest.ConnectAndPingAsync(server.Host, server.Port);

        server.Pause();
        try
        {
            await connection.SendAsync(["PING"], SelfTest.Token);
            await Assert.ThrowsAsync<TimeoutException>(() => connection.ReadReplyAsync(TimeSpan.FromMilliseconds(500), SelfTest.Token));
            Assert.True(SelfTest.IsSilentButOpen(connection.Socket));
        }
        finally
        {
            server.Resume();
        }

        Assert.Equal("+PONG\r\n", await SelfTest.PingAsync(server.Host, server.Port));
    }

    [Fact]
    public async Task Command_stats_count_exactly_the_commands_sent_after_a_reset()
    {
        await using var server = await RedisServer.StartNewAsync(cancellationToken: SelfTest.Token);
        Assert.Equal(":1\r\n", await server.ExecuteAsync("HSET", "before-reset", "f", "v"));

        await server.ResetStatsAsync();
        for (var i = 0; i < 3; i++)
        {
            Assert.Equal(":1\r\n", await server.ExecuteAsync("HSET", "h", $"f{i}", "v"));
        }

        var calls = await server.GetCommandCallsAsync();

        Assert.Equal(3, calls["hset"]);
        Assert.False(calls.ContainsKey("hget"));
    }

    [Fact]
    public async Task Requirepass_is_enforced_and_used_by_the_helpers()
    {
        await using var server = await RedisServer.StartNewAsync(new RedisServerOptions { RequirePass = "s3cret" }, SelfTest.Token);

        Assert.Equal($"127.0.0.1:{server.Port},password=s3cret", server.ConnectionString);
        Assert.StartsWith("-NOAUTH", await SelfTest.PingAsync(server.Host, server.Port), StringComparison.Ordinal);
        Assert.Equal("+PONG\r\n", await server.ExecuteAsync("PING"));
    }
}

public sealed class FaultProxyFixtureSelfTests
{
    [Fact]
    public async Task PassThrough_forwards_and_counts_bytes()
    {
        await using var server = await RedisServer.StartNewAsync(cancellationToken: SelfTest.Token);
        await using var proxy = new FaultProxy(server.Host, server.Port);

        using var connection = await SelfTest.ConnectAndPingAsync(proxy.Host, proxy.Port);

        Assert.Equal("*1\r\n$4\r\nPING\r\n".Length, proxy.BytesToServer);
        Assert.Equal("+PONG\r\n".Length, proxy.BytesToClient);
        Assert.Equal(1, proxy.ConnectionsAccepted);
        Assert.Equal(1, proxy.ActiveConnections);
    }

    [Fact]
    public async Task Blackhole_silences_old_and_new_connections_and_old_ones_stay_dead_after_passthrough()
    {
        await using var server = await RedisServer.StartNewAsync(cancellationToken: SelfTest.Token);
        await using var proxy = new FaultProxy(server.Host, server.Port);
        using var old = await SelfTest.ConnectAndPingAsync(proxy.Host, proxy.Port);

        proxy.SetMode(FaultMode.Blackhole);

        await old.SendAsync(["PING"], SelfTest.Token);
        await Assert.ThrowsAsync<TimeoutException>(() => old.ReadReplyAsync(TimeSpan.FromMilliseconds(500), SelfTest.Token));
        Assert.True(SelfTest.IsSilentButOpen(old.Socket));

        // A new connection is accepted but never answered either.
        using var fresh = await RespConnection.ConnectAsync(proxy.Host, proxy.Port, SelfTest.Answer, SelfTest.Token);
        await fresh.SendAsync(["PING"], SelfTest.Token);
        await Assert.ThrowsAsync<TimeoutException>(() => fresh.ReadReplyAsync(TimeSpan.FromMilliseconds(300), SelfTest.Token));
        Assert.True(SelfTest.IsSilentButOpen(fresh.Socket));
        Assert.Equal(2, proxy.ActiveConnections);

        proxy.SetMode(FaultMode.PassThrough);

        // Documented semantics: blackholed connections stay dead-but-open; only new ones forward.
        Assert.Equal("+PONG\r\n", await SelfTest.PingAsync(proxy.Host, proxy.Port));
        await old.SendAsync(["PING"], SelfTest.Token);
        await Assert.ThrowsAsync<TimeoutException>(() => old.ReadReplyAsync(TimeSpan.FromMilliseconds(300), SelfTest.Token));
        Assert.True(SelfTest.IsSilentButOpen(old.Socket));
    }

    [Fact]
    public async Task Reset_mode_resets_existing_and_new_connections()
    {
        await using var server = await RedisServer.StartNewAsync(cancellationToken: SelfTest.Token);
        await using var proxy = new FaultProxy(server.Host, server.Port);
        using var existing = await SelfTest.ConnectAndPingAsync(proxy.Host, proxy.Port);

        proxy.SetMode(FaultMode.Reset);

        await AssertConnectionResetAsync(existing);
        Assert.Equal(0, proxy.ActiveConnections);

        // The RST can even beat the client's connect completion, so the connect is part of the reset check.
        await AssertConnectionResetAsync(async () =>
        {
            using var fresh = await RespConnection.ConnectAsync(proxy.Host, proxy.Port, SelfTest.Answer, SelfTest.Token);
            await fresh.ExecuteAsync(["PING"], SelfTest.Answer, SelfTest.Token);
        });
        Assert.Equal(2, proxy.ConnectionsAccepted);
    }

    [Fact]
    public async Task ResetAllConnections_resets_existing_connections_only()
    {
        await using var server = await RedisServer.StartNewAsync(cancellationToken: SelfTest.Token);
        await using var proxy = new FaultProxy(server.Host, server.Port);
        using var existing = await SelfTest.ConnectAndPingAsync(proxy.Host, proxy.Port);

        proxy.ResetAllConnections();

        await AssertConnectionResetAsync(existing);
        Assert.Equal("+PONG\r\n", await SelfTest.PingAsync(proxy.Host, proxy.Port));
    }

    [Fact]
    public async Task Latency_delays_each_direction()
    {
        await using var server = await RedisServer.StartNewAsync(cancellationToken: SelfTest.Token);
        await using var proxy = new FaultProxy(server.Host, server.Port);
        using var connection = await SelfTest.ConnectAndPingAsync(proxy.Host, proxy.Port);

        proxy.SetMode(FaultMode.Latency(TimeSpan.FromMilliseconds(150)));
        var stopwatch = Stopwatch.StartNew();
        Assert.Equal("+PONG\r\n", await connection.ExecuteAsync(["PING"], SelfTest.Answer, SelfTest.Token));

        // Request and reply are each delayed once: at least 2 x 150 ms (timer granularity allowance).
        Assert.InRange(stopwatch.Elapsed, TimeSpan.FromMilliseconds(290), SelfTest.Answer);
    }

    private static Task AssertConnectionResetAsync(RespConnection connection) =>
        AssertConnectionResetAsync(() => connection.ExecuteAsync(["PING"], SelfTest.Answer, SelfTest.Token));

    private static async Task AssertConnectionResetAsync(Func<Task> action)
    {
        // Depending on timing the RST surfaces on the send or on the read; it must never look like a clean close
        // (EndOfStreamException) or a time-out.
        var error = await Assert.ThrowsAnyAsync<Exception>(action);
        var socketError = error as SocketException ?? error.InnerException as SocketException;
        Assert.True(socketError?.SocketErrorCode == SocketError.ConnectionReset, $"Expected a connection reset, got: {error}");
    }
}

public sealed class NetworkNamespaceRedisFixtureSelfTests
{
    [Fact]
    public async Task Drop_silences_traffic_restore_heals_and_dispose_removes_the_namespace()
    {
        NetworkNamespaceRedis.SkipIfUnavailable();

        var fixture = await NetworkNamespaceRedis.StartAsync(cancellationToken: SelfTest.Token);
        var name = fixture.Name;
        var hostInterface = fixture.HostInterface;
        try
        {
            Assert.StartsWith($"rctest-{Environment.ProcessId}-", name, StringComparison.Ordinal);
            Assert.Equal($"{fixture.Host}:6379", fixture.ConnectionString);
            using var established = await SelfTest.ConnectAndPingAsync(fixture.Host, fixture.Port);

            await fixture.DropTrafficAsync();

            await established.SendAsync(["PING"], SelfTest.Token);
            await Assert.ThrowsAsync<TimeoutException>(() => established.ReadReplyAsync(TimeSpan.FromSeconds(1), SelfTest.Token));
            Assert.True(SelfTest.IsSilentButOpen(established.Socket));

            // Unlike the proxy's blackhole, even the TCP handshake is dropped (no RST, no ICMP): connect hangs.
            await Assert.ThrowsAsync<TimeoutException>(
                () => RespConnection.ConnectAsync(fixture.Host, fixture.Port, TimeSpan.FromMilliseconds(500), SelfTest.Token));

            await fixture.RestoreTrafficAsync();

            Assert.Equal("+PONG\r\n", await SelfTest.PingAsync(fixture.Host, fixture.Port));
        }
        finally
        {
            await fixture.DisposeAsync();
        }

        await fixture.DisposeAsync(); // Idempotent.
        var namespaces = await Shell.RunAsync(Shell.FindExecutable("ip")!, "netns", "list");
        Assert.DoesNotContain(name, namespaces.StandardOutput, StringComparison.Ordinal);
        var link = await Shell.TryRunAsync(Shell.FindExecutable("ip")!, "link", "show", hostInterface);
        Assert.NotEqual(0, link.ExitCode);
    }
}
