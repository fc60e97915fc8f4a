using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using StackExchange.Redis;

namespace Resilient.Caching.Connection;

/// <summary>
/// Per-socket TCP settings, applied in <see cref="ConfigurationOptions.BeforeSocketConnect"/>, which
/// StackExchange.Redis calls for every physical connection (interactive and subscription) on every reconnect.
/// </summary>
internal static class SocketTuning
{
    // Linux <netinet/tcp.h>: IPPROTO_TCP = 6, TCP_USER_TIMEOUT = 18 (milliseconds, unsigned int).
    private const int IpProtoTcp = 6;
    private const int TcpUserTimeout = 18;

    private static int s_loggedFailure;

    public static Action<EndPoint, ConnectionType, Socket> CreateHook(
        ResilientRedisCacheOptions options, Action<EndPoint, ConnectionType, Socket>? userHook, ILogger logger)
    {
        var settings = new Settings(
            options.SocketKeepAlive,
            (int)options.TcpKeepAlive.Idle.TotalSeconds,
            (int)options.TcpKeepAlive.Interval.TotalSeconds,
            options.TcpKeepAlive.Count);

        return (endPoint, connectionType, socket) =>
        {
            Apply(settings, endPoint, socket, logger);

            // The user's hook runs last so that an explicit choice of theirs wins.
            userHook?.Invoke(endPoint, connectionType, socket);
        };
    }

    /// <summary>Applies the settings; each option on its own, because a throwing hook looks like a connect timeout.</summary>
    public static void Apply(Settings settings, EndPoint endPoint, Socket socket, ILogger logger)
    {
        if (socket.AddressFamily == AddressFamily.Unix || endPoint is UnixDomainSocketEndPoint)
        {
            return;
        }

        // Closing a connection (a reset after a failure, shutdown) aborts it: what the kernel still holds unsent is
        // dropped, not retransmitted once the path heals, so a write the cache gave up on cannot land after the
        // recovery has deleted its key.
        Try(socket, endPoint, logger, "SO_LINGER", static (s, _) => s.LingerState = new LingerOption(true, 0), settings);
        if (!settings.KeepAlive)
        {
            return;
        }

        Try(socket, endPoint, logger, "SO_KEEPALIVE", static (s, _) => s.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.KeepAlive, true), settings);
        Try(socket, endPoint, logger, "TCP_KEEPIDLE", static (s, v) => s.SetSocketOption(SocketOptionLevel.Tcp, SocketOptionName.TcpKeepAliveTime, v.IdleSeconds), settings);
        Try(socket, endPoint, logger, "TCP_KEEPINTVL", static (s, v) => s.SetSocketOption(SocketOptionLevel.Tcp, SocketOptionName.TcpKeepAliveInterval, v.IntervalSeconds), settings);
        Try(socket, endPoint, logger, "TCP_KEEPCNT", static (s, v) => s.SetSocketOption(SocketOptionLevel.Tcp, SocketOptionName.TcpKeepAliveRetryCount, v.Count), settings);

        // Once a command is unacknowledged Linux stops keepalive probes and retransmits for ~15 minutes;
        // TCP_USER_TIMEOUT bounds that. It is a raw option .NET does not track, so it would be lost when .NET
        // falls back to the next address of a host name: only set it where there is no fallback.
        if (OperatingSystem.IsLinux() && endPoint is IPEndPoint)
        {
            Try(socket, endPoint, logger, "TCP_USER_TIMEOUT", static (s, v) =>
            {
                Span<byte> value = stackalloc byte[sizeof(uint)];
                BinaryPrimitives.WriteUInt32LittleEndian(value, v.UserTimeoutMilliseconds);
                s.SetRawSocketOption(IpProtoTcp, TcpUserTimeout, value);
            }, settings);
        }
    }

    private static void Try(Socket socket, EndPoint endPoint, ILogger logger, string option, Action<Socket, Settings> set, Settings settings)
    {
        try
        {
            set(socket, settings);
        }
        catch (Exception exception) when (exception is SocketException or PlatformNotSupportedException or ObjectDisposedException)
        {
            // Once per process: a platform that refuses an option refuses it on every reconnect.
            if (Interlocked.Exchange(ref s_loggedFailure, 1) == 0)
            {
                Log.SocketOptionFailed(logger, exception, option, endPoint.ToString() ?? "?");
            }
        }
    }

    internal readonly record struct Settings(bool KeepAlive, int IdleSeconds, int IntervalSeconds, int Count)
    {
        /// <summary>idle + interval × count: the same budget keepalive gives an idle connection.</summary>
        public uint UserTimeoutMilliseconds => (uint)Math.Min(uint.MaxValue, ((long)IdleSeconds + ((long)IntervalSeconds * Count)) * 1000);
    }
}
