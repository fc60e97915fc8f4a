using System.Diagnostics;
using System.Globalization;

namespace Resilient.Caching.IntegrationTests.Infrastructure;

/// <summary>Replication helpers for the topology fixtures (apart from <see cref="RedisServer"/>, which the benchmarks share).</summary>
public static class Replication
{
    /// <summary>
    /// On a primary: waits until every replica has acknowledged everything written so far, e.g. before killing the
    /// primary in a test that expects the replica to hold the data. (WAIT would not do: it only counts the writes of
    /// its own connection, and every <see cref="RedisServer.ExecuteAsync(string[])"/> opens a new one.)
    /// </summary>
    public static async Task WaitForReplicasInSyncAsync(this RedisServer primary, TimeSpan timeout)
    {
        var deadline = Stopwatch.StartNew();
        while (true)
        {
            // master_repl_offset:1234 and, per replica, slave0:ip=127.0.0.1,port=6380,state=online,offset=1234,lag=0
            var info = RespReply.Info(await primary.ExecuteAsync("INFO", "replication"));
            var offset = long.Parse(info["master_repl_offset"], CultureInfo.InvariantCulture);
            var replicas = info.Where(f => f.Key.StartsWith("slave", StringComparison.Ordinal) && char.IsAsciiDigit(f.Key[^1]))
                .Select(f => f.Value.Split(',').Select(p => p.Split('=')).ToDictionary(p => p[0], p => p[1]))
                .ToList();
            if (replicas.Count > 0 && replicas.All(r => r["state"] == "online" && long.Parse(r["offset"], CultureInfo.InvariantCulture) >= offset))
            {
                return;
            }

            if (deadline.Elapsed > timeout)
            {
                throw new TimeoutException($"The replicas of {primary.Host}:{primary.Port} did not catch up with offset {offset} within {timeout.TotalSeconds:0} s.");
            }

            // Replicas acknowledge once a second.
            await Task.Delay(50);
        }
    }
}
