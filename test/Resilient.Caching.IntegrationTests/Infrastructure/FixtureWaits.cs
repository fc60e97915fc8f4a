using System.Diagnostics;

namespace Resilient.Caching.IntegrationTests.Infrastructure;

/// <summary>
/// What the topology fixtures share while they wait for a deployment to change (apart from <see cref="RedisServer"/>,
/// which the benchmarks link and which therefore stays self-contained).
/// </summary>
internal static class FixtureWaits
{
    /// <summary>
    /// One command with a short reply time-out; null when the process is down, frozen or replies with an error: a
    /// fixture watching a node through a failover must not fail on the node it is watching.
    /// </summary>
    public static async Task<string?> TryExecuteAsync(this RedisServer server, TimeSpan timeout, params string[] command)
    {
        try
        {
            var reply = await server.ExecuteAsync(timeout, command);
            return reply.StartsWith('-') ? null : reply;
        }
        catch (Exception ex) when (ex is System.Net.Sockets.SocketException or TimeoutException or IOException or InvalidOperationException)
        {
            return null;
        }
    }

    /// <summary>Ends a fixture's wait with what did not happen once <paramref name="timeout"/> has passed.</summary>
    public static void ThrowIfLate(Stopwatch elapsed, TimeSpan timeout, string what)
    {
        if (elapsed.Elapsed > timeout)
        {
            throw new TimeoutException($"{what} within {timeout.TotalSeconds:0.#} s.");
        }
    }
}
