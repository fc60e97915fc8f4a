using System.Globalization;
using System.Net;

namespace Resilient.Caching.IntegrationTests.FaultLab;

/// <summary>The kernel's view of this machine's TCP sockets (/proc/net/tcp): how many are established to an endpoint.</summary>
internal static class KernelTcp
{
    private const string Established = "01";

    /// <summary>Established IPv4 sockets whose remote end is <paramref name="host"/>:<paramref name="port"/>.</summary>
    public static int EstablishedTo(string host, int port)
    {
        // rem_address is the IPv4 address as a little-endian hex word and the port as big-endian hex: "0200C80A:18EB".
        var bytes = IPAddress.Parse(host).GetAddressBytes();
        var remote = string.Create(CultureInfo.InvariantCulture, $"{bytes[3]:X2}{bytes[2]:X2}{bytes[1]:X2}{bytes[0]:X2}:{port:X4}");
        var count = 0;
        foreach (var line in File.ReadLines("/proc/net/tcp").Skip(1))
        {
            // sl local_address rem_address st ...
            var fields = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (fields.Length > 3 && fields[2] == remote && fields[3] == Established)
            {
                count++;
            }
        }

        return count;
    }
}
