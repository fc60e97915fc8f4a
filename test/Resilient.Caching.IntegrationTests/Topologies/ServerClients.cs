using System.Globalization;
using Resilient.Caching.IntegrationTests.Infrastructure;

namespace Resilient.Caching.IntegrationTests.Topologies;

/// <summary>One client connection as the server lists it (CLIENT LIST).</summary>
/// <param name="ClientPort">The client's end of the connection: its local port.</param>
/// <param name="Subscriber">In subscriber mode (flag P): a multiplexer's subscription connection.</param>
/// <param name="LastCommand">The last command it sent (<c>cmd=</c>).</param>
internal sealed record ServerClient(int ClientPort, bool Subscriber, string LastCommand);

/// <summary>
/// The client connections a server has, as it sees them. Matched by port with the sockets this process holds (see
/// <see cref="KernelSockets.OwnSocketsTo"/>), they are the multiplexer's, each known as interactive or subscription;
/// a sentinel takes no client name, so the port is what identifies them.
/// </summary>
internal static class ServerClients
{
    public static async Task<IReadOnlyList<ServerClient>> ListAsync(RedisServer server)
    {
        var text = RespReply.Text(await server.ExecuteAsync(TimeSpan.FromSeconds(2), "CLIENT", "LIST"));
        List<ServerClient> clients = [];
        foreach (var line in text.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            // id=5 addr=127.0.0.1:41234 laddr=127.0.0.1:6379 fd=8 name= age=0 idle=0 flags=N ... cmd=client|list ...
            var fields = line.Split(' ').Select(f => f.Split('=', 2)).Where(kv => kv.Length == 2).ToDictionary(kv => kv[0], kv => kv[1], StringComparer.Ordinal);
            var command = fields.GetValueOrDefault("cmd", string.Empty);
            if (command == "client|list")
            {
                continue; // This very probe.
            }

            var address = fields["addr"];
            clients.Add(new ServerClient(
                int.Parse(address[(address.LastIndexOf(':') + 1)..], CultureInfo.InvariantCulture),
                fields.GetValueOrDefault("flags", string.Empty).Contains('P', StringComparison.Ordinal),
                command));
        }

        return clients;
    }
}
