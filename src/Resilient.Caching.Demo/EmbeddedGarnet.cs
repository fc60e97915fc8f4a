using System.Net;
using System.Net.Sockets;
using Garnet;

namespace Resilient.Caching.Demo;

/// <summary>
/// Microsoft's Garnet, a real RESP server, running inside this process on a free loopback port: what the demo talks
/// to when no Redis is configured, so that it runs wherever the .NET SDK does. The compatibility tests run the
/// cache against the same server.
/// </summary>
internal sealed class EmbeddedGarnet : IDisposable
{
    private readonly GarnetServer _server;

    private EmbeddedGarnet(GarnetServer server, int port)
    {
        _server = server;
        Port = port;
    }

    /// <summary>The Garnet version, as its <c>INFO server</c> reports it.</summary>
    public static string Version { get; } = typeof(GarnetServer).Assembly.GetName().Version?.ToString(3) ?? "unknown";

    public int Port { get; }

    public string ConnectionString => $"127.0.0.1:{Port}";

    /// <summary>Starts Garnet on 127.0.0.1; retried on another port if the one picked was taken meanwhile.</summary>
    public static EmbeddedGarnet Start()
    {
        for (var attempt = 1; ; attempt++)
        {
            var port = FreeLoopbackPort();
            GarnetServer? server = null;
            try
            {
                // --lua: the output-cache store evicts by tag with scripts, which Garnet runs only when asked to.
                // Small memory and index: a demo's data, not Garnet's multi-gigabyte defaults.
                server = new GarnetServer(
                [
                    "--bind", "127.0.0.1", "--port", port.ToString(System.Globalization.CultureInfo.InvariantCulture),
                    "--lua", "--memory", "64m", "--index", "1m", "--disable-console-logger",
                ]);
                server.Start();
                return new EmbeddedGarnet(server, port);
            }
            catch (Exception) when (attempt < 3)
            {
                server?.Dispose();
            }
        }
    }

    public void Dispose() => _server.Dispose();

    private static int FreeLoopbackPort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
