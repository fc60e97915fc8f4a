using System.Globalization;
using System.Net;
using System.Runtime.InteropServices;
using Xunit;

namespace Resilient.Caching.IntegrationTests.Infrastructure;

/// <summary>
/// Reads the kernel's view of TCP sockets (/proc/net/tcp and tcp6): which timer is armed on each socket and when
/// it fires. A keepalive timer is <c>tr</c> = 2; <c>tm-&gt;when</c> is in clock ticks (USER_HZ = 100 per second).
/// The options set on this process's own sockets are read back with getsockopt on their descriptors.
/// </summary>
internal static class KernelSockets
{
    private const int Established = 0x01;
    private const double TicksPerSecond = 100;

    // Linux <sys/socket.h> and <netinet/tcp.h>.
    private const int SolSocket = 1;
    private const int SoKeepAlive = 9;
    private const int IpProtoTcp = 6;
    private const int TcpKeepIdle = 4;
    private const int TcpKeepIntvl = 5;
    private const int TcpKeepCnt = 6;
    private const int TcpUserTimeout = 18;

    /// <summary>Skips the calling test where there is no /proc/net/tcp to read.</summary>
    public static void SkipUnlessLinux() => Assert.SkipUnless(OperatingSystem.IsLinux(), "reads /proc/net/tcp (Linux only)");

    public static IReadOnlyList<TcpSocket> ClientSocketsTo(int remotePort) =>
        [.. Read("/proc/net/tcp").Concat(Read("/proc/net/tcp6")).Where(s => s.State == Established && s.Remote.Port == remotePort)];

    /// <summary>The established sockets of this process (its open file descriptors) to <paramref name="remotePort"/>.</summary>
    public static IReadOnlyList<TcpSocket> OwnSocketsTo(int remotePort)
    {
        var own = OwnSocketInodes();
        return [.. ClientSocketsTo(remotePort).Where(s => own.Contains(s.Inode))];
    }

    /// <summary>How many established sockets have <paramref name="host"/>:<paramref name="port"/> as their remote end.</summary>
    public static int EstablishedTo(string host, int port)
    {
        var address = IPAddress.Parse(host);
        return ClientSocketsTo(port).Count(s => s.Remote.Address.Equals(address));
    }

    /// <summary>
    /// The keepalive options of this process's socket with <paramref name="inode"/>, read with getsockopt on its
    /// descriptor; null if the socket was closed meanwhile (or its descriptor reused for another).
    /// </summary>
    public static SocketOptions? OwnSocketOptions(long inode)
    {
        foreach (var descriptor in Directory.EnumerateFiles("/proc/self/fd"))
        {
            if (SocketInode(descriptor) != inode)
            {
                continue;
            }

            var fd = int.Parse(Path.GetFileName(descriptor), CultureInfo.InvariantCulture);
            var options = new SocketOptions(
                Get(fd, SolSocket, SoKeepAlive) is { } keepAlive ? keepAlive != 0 : null,
                Get(fd, IpProtoTcp, TcpKeepIdle),
                Get(fd, IpProtoTcp, TcpKeepIntvl),
                Get(fd, IpProtoTcp, TcpKeepCnt),
                Get(fd, IpProtoTcp, TcpUserTimeout));

            // Read from the socket meant only if the descriptor still names it.
            return SocketInode(descriptor) == inode ? options : null;
        }

        return null;
    }

    private static int? Get(int fd, int level, int option)
    {
        var length = sizeof(int);
        return GetSocketOption(fd, level, option, out var value, ref length) == 0 ? value : null;
    }

    [DllImport("libc", EntryPoint = "getsockopt", SetLastError = true)]
    private static extern int GetSocketOption(int socket, int level, int option, out int value, ref int length);

    private static IEnumerable<TcpSocket> Read(string path)
    {
        if (!File.Exists(path))
        {
            yield break;
        }

        foreach (var line in File.ReadLines(path).Skip(1))
        {
            // sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode ...
            var fields = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            var timer = fields[5].Split(':');
            yield return new TcpSocket(
                ParseEndPoint(fields[1]),
                ParseEndPoint(fields[2]),
                int.Parse(fields[3], NumberStyles.HexNumber, CultureInfo.InvariantCulture),
                int.Parse(timer[0], NumberStyles.HexNumber, CultureInfo.InvariantCulture),
                TimeSpan.FromSeconds(long.Parse(timer[1], NumberStyles.HexNumber, CultureInfo.InvariantCulture) / TicksPerSecond),
                long.Parse(fields[9], CultureInfo.InvariantCulture));
        }
    }

    private static HashSet<long> OwnSocketInodes()
    {
        // Each descriptor of a socket links to "socket:[inode]".
        HashSet<long> inodes = [];
        foreach (var descriptor in Directory.EnumerateFiles("/proc/self/fd"))
        {
            if (SocketInode(descriptor) is { } inode)
            {
                inodes.Add(inode);
            }
        }

        return inodes;
    }

    private static long? SocketInode(string descriptor)
    {
        try
        {
            return new FileInfo(descriptor).LinkTarget is { } target && target.StartsWith("socket:[", StringComparison.Ordinal)
                ? long.Parse(target.AsSpan(8, target.Length - 9), CultureInfo.InvariantCulture)
                : null;
        }
        catch (IOException)
        {
            // Closed between the listing and the read.
            return null;
        }
    }

    private static IPEndPoint ParseEndPoint(string text)
    {
        var parts = text.Split(':');
        var bytes = Convert.FromHexString(parts[0]);

        // The kernel prints each 32-bit word of the address in host (little-endian) order.
        for (var word = 0; word < bytes.Length; word += 4)
        {
            Array.Reverse(bytes, word, 4);
        }

        return new IPEndPoint(new IPAddress(bytes), int.Parse(parts[1], NumberStyles.HexNumber, CultureInfo.InvariantCulture));
    }

    /// <summary>SO_KEEPALIVE, TCP_KEEPIDLE (s), TCP_KEEPINTVL (s), TCP_KEEPCNT and TCP_USER_TIMEOUT (ms) of one socket; null where getsockopt failed.</summary>
    internal sealed record SocketOptions(bool? KeepAlive, int? IdleSeconds, int? IntervalSeconds, int? Count, int? UserTimeoutMilliseconds)
    {
        public override string ToString() =>
            string.Create(CultureInfo.InvariantCulture, $"keepalive={KeepAlive} idle={IdleSeconds} intvl={IntervalSeconds} cnt={Count} user_timeout={UserTimeoutMilliseconds}");
    }

    internal sealed record TcpSocket(IPEndPoint Local, IPEndPoint Remote, int State, int Timer, TimeSpan TimerExpiresIn, long Inode)
    {
        public bool KeepAliveArmed => Timer == 2;
    }
}
