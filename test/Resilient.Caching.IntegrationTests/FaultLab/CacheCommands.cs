using System.Globalization;
using Resilient.Caching.IntegrationTests.Infrastructure;

namespace Resilient.Caching.IntegrationTests.FaultLab;

/// <summary>
/// Counts, on the server, the cache operations that reached Redis. Microsoft's RedisCache 10 sends one primary
/// command per operation — HMGET (Get, Refresh), HMSET (Set), UNLINK (Remove) — plus EXPIRE when an entry has an
/// expiration (the lab's traffic uses none). Older and other variants are included so a change of the stock
/// provider cannot make the count silently zero. Commands that Redis refused before running them (OOM, BUSY, NOAUTH,
/// READONLY…) are counted too: they reached Redis.
/// </summary>
internal static class CacheCommands
{
    private static readonly string[] ReadsAndWrites = ["hmget", "hget", "hgetall", "hmset", "hset", "eval", "evalsha", "multi"];

    // Remove's command, and also what the cache's recovery sends: the replay of the writes an outage left pending
    // deletes their keys in UNLINK batches before the window closes, one batch per round, and runs another round for
    // the keys recorded again while one ran (more rounds the longer each takes, as on a loaded machine).
    private static readonly string[] Deletes = ["unlink", "del"];

    /// <summary>
    /// Cache operations (calls plus rejected calls of the primary commands) since the server started or its
    /// statistics were reset. Reads <c>INFO commandstats</c> itself because <see cref="RedisServer.GetCommandCallsAsync"/>
    /// leaves out <c>rejected_calls</c>, which is where refused commands are counted.
    /// </summary>
    public static Task<long> CountAsync(RedisServer server) => CountAsync(server, [.. ReadsAndWrites, .. Deletes]);

    /// <summary>
    /// Reads and writes only (as <see cref="CountAsync(RedisServer)"/>, without the deletes): what traffic that only
    /// gets and sets sends, told apart from the deletes of the cache's recovery.
    /// </summary>
    public static Task<long> ReadsAndWritesAsync(RedisServer server) => CountAsync(server, ReadsAndWrites);

    private static async Task<long> CountAsync(RedisServer server, string[] commands)
    {
        var reply = await server.ExecuteAsync("INFO", "commandstats");
        long total = 0;
        foreach (var line in reply.Split("\r\n"))
        {
            // cmdstat_hget:calls=3,usec=12,usec_per_call=4.00,rejected_calls=0,failed_calls=0
            if (!line.StartsWith("cmdstat_", StringComparison.Ordinal) || line.IndexOf(':', StringComparison.Ordinal) is not (var colon and > 0))
            {
                continue;
            }

            if (!commands.Contains(line[8..colon], StringComparer.OrdinalIgnoreCase))
            {
                continue;
            }

            total += Field(line, "calls=") + Field(line, "rejected_calls=");
        }

        return total;
    }

    private static long Field(string line, string name)
    {
        var start = line.IndexOf("," + name, StringComparison.Ordinal) is var at and >= 0 ? at + 1 + name.Length
            : line.IndexOf(":" + name, StringComparison.Ordinal) is var first and >= 0 ? first + 1 + name.Length
            : -1;
        if (start < 0)
        {
            return 0;
        }

        var end = line.IndexOf(',', start);
        return long.Parse(end < 0 ? line[start..] : line[start..end], CultureInfo.InvariantCulture);
    }
}
